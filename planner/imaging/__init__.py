"""CT images: volumes with their geometry, the DICOM folder scan, the checked CT loader, image
files.

Modules, bottom up: ``paths`` (only regular files are read; special files named),
``orientation`` (axial/coronal/sagittal/oblique from direction cosines), ``volume``
(CTVolume, Mask), ``dicom_headers`` (one file's checked header), ``dicom_scan`` (series in a
folder), ``import_report`` (what an import read, skipped, found), ``slice_stack`` (stack
geometry, gaps, tilt, resampling), ``pixels`` (decode + rescale), ``series_checks``,
``image_files`` (NIfTI/MHA/NRRD) and ``ct_loader`` (the entry points ``inspect_ct``/``load_ct``,
which also re-exports the report types).
"""
