"""The only part of the package that imports napari, Qt or magicgui."""
