"""Files and formats, no model: reading and writing volumes, windowing, atomic writes, hashing,
the dataset path policy, validation of every JSON/CSV we read, and the QC trace's record format."""
