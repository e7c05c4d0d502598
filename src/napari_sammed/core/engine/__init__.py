"""One slice at a time: the registry of model families (:mod:`.families`, with ``load_model``),
the backend contract and one backend per family, frame geometry (:mod:`.frame`),
:class:`.slice_engine.SliceEngine`, the CPU mask decoder (:mod:`.token_decoder`), slices in flight
on worker threads (:mod:`.slice_workers`), clicks, automatic masks and SAMAug maps."""
