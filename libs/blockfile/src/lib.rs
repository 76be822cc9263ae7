//! Checksummed block files: the storage primitive under delta and image layers.
