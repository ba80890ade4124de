"""DICOM RT and CT objects: reading (RTSTRUCT, RTDOSE, any object) and writing (CT series, RT
exports).
"""
