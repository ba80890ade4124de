"""The deterministic synthetic demo case: phantom anatomy, its DICOM CT, masks, plan and post-op
CT.
"""
