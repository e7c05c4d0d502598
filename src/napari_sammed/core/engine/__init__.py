"""One slice at a time: the backend interface of each model family, frame geometry
(:mod:`.frame`), :class:`.slice_engine.SliceEngine`, clicks, automatic masks and SAMAug maps."""
