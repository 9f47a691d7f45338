"""Part of ggt_datasets."""
