"""CT images: volumes with their geometry, the DICOM folder scan, the checked CT loader, image
files.
"""
