"""Exports of a plan: the PDF summary, the needle loading sheet, CSV and DICOM RT."""
