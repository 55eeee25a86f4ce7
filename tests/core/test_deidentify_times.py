"""core.dicom.deidentify: a study time survives de-identification when dicognito shifted its date by whole days.

dicognito shifts dates and times by a random whole number of hours; for one seed in 24 that is a whole number
of days, so the time of day comes back unchanged. It used to be emptied then (taken for an unmodified
identifier), which made Study Time empty in about one export in 24 (a DICOMDIR warning in dciodvfy)."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset

from surgtwin.core.dicom.deidentify import Deidentifier


def header(**kw) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.PatientName, ds.PatientID = "DOE^JANE", "MRN-4711"
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


def test_a_time_shifted_by_whole_days_is_kept():
    # seed "s20": an offset of whole days (found by trying seeds; the time of day comes back unchanged)
    ds = header(StudyDate="20240229", StudyTime="083000")
    Deidentifier(seed="s20").deidentify(ds)
    assert ds.StudyDate and ds.StudyDate != "20240229"
    assert ds.StudyTime == "083000"


def test_a_time_shifted_by_hours_is_shifted():
    ds = header(StudyDate="20240229", StudyTime="083000")
    Deidentifier(seed="s0").deidentify(ds)
    assert ds.StudyDate != "20240229" and ds.StudyTime and ds.StudyTime != "083000"


def test_a_time_without_a_date_is_emptied():
    # nothing shifts a time that has no date: it still holds the original value and is emptied
    ds = header(StudyTime="083000")
    Deidentifier(seed="s20").deidentify(ds)
    assert "StudyTime" in ds and not ds.StudyTime


def test_every_seed_leaves_a_study_time():
    for i in range(48):
        ds = header(StudyDate="20240229", StudyTime="083000")
        Deidentifier(seed=f"t{i}").deidentify(ds)
        assert ds.StudyTime, f"seed t{i}"
