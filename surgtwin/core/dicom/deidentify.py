"""De-identification of exported DICOM objects (PS3.15 Basic Application Level Confidentiality Profile).

One ``Deidentifier`` per export: it holds one ``dicognito`` Anonymizer, so every object of the export
maps each UID, name, ID and date the same way, and the exported SEG, RTSTRUCT and Secondary Capture
still reference the exported (de-identified) CT. Use it *before* building the derived objects:
``deidentify_source`` gives a de-identified copy of the source headers, from which the derived
objects copy patient and study attributes and take their references; ``deidentify`` is applied to each
source image written out; ``mark`` labels a derived object as de-identified.

What happens to a dataset (``deidentify``), in this order:

1. private elements are removed (the profile removes them unless a safe-private option applies);
2. dicognito replaces every instance UID (class and transfer syntax UIDs kept), person name and
   identifier with consistent pseudonyms, shifts every date by one offset, and replaces institution
   and address fields;
3. what dicognito keeps of the profile's list is removed or emptied: the patient attributes of
   ``surgtwin.core.phi.PHI_KEYWORDS`` that still hold their original value (type 2 ones emptied, others
   removed; a time whose date was shifted by a whole number of days keeps its value: dicognito shifts by whole
   hours, so one export in 24 keeps the time of day, which is no identifier once the date moved), birth date
   and sex emptied, and free text that may hold a name (descriptions, comments,
   protocol names);
4. ``mark``: PatientIdentityRemoved YES, DeidentificationMethod and its code sequence (113100 Basic
   Application Confidentiality Profile, 113107 Retain Longitudinal Temporal Information Modified Dates),
   LongitudinalTemporalInformationModified MODIFIED.

Not done (outside the Basic Profile's reach here): text burned into pixel data (CT images rarely have
any; the snapshots surgtwin renders carry none), names typed inside structure names.
"""

from __future__ import annotations

import copy

from surgtwin.core.errors import SurgtwinError

#: emptied (kept present: type 2 in the IODs surgtwin writes) when they still hold their original value
EMPTIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName",
           "StudyID", "StudyDate", "StudyTime", "OperatorsName")
#: free text that may hold identifying words (PS3.15 Table E.1-1 action X): removed
FREE_TEXT = ("StudyDescription", "SeriesDescription", "ImageComments", "PatientComments", "ProtocolName",
             "RequestedProcedureDescription", "PerformedProcedureStepDescription", "AdditionalPatientHistory",
             "AdmittingDiagnosesDescription", "DerivationDescription", "ReasonForStudy", "StudyComments",
             "InstitutionalDepartmentName", "PerformedProcedureStepID", "PatientBirthTime", "PatientAge",
             "PatientSize", "PatientWeight", "EthnicGroup", "Occupation", "MedicalAlerts", "Allergies",
             "PregnancyStatus", "SmokingStatus", "PatientState", "PatientAddress", "CountryOfResidence",
             "RegionOfResidence", "PatientTelephoneNumbers", "OtherPatientNames", "PatientBirthName",
             "PatientMotherBirthName", "ResponsiblePerson", "ResponsibleOrganization", "MilitaryRank",
             "BranchOfService", "IssuerOfPatientID", "OtherPatientIDsSequence", "RequestAttributesSequence",
             "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers", "InstitutionAddress",
             "DeviceSerialNumber", "PhysiciansOfRecord", "PerformingPhysicianName",
             "NameOfPhysiciansReadingStudy", "RequestingPhysician", "StationName")
METHOD = "PS3.15 Basic Profile: dicognito + surgtwin"  # LO: at most 64 characters
CODES = (("113100", "DCM", "Basic Application Confidentiality Profile"),
         ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option"))


def _date_shifted(ds, original: dict, date_keyword: str) -> bool:
    """Whether dicognito moved ``date_keyword`` away from its original value (and so its time with it)."""
    return bool(original.get(date_keyword)) and bool(ds.get(date_keyword)) and ds.get(date_keyword) != original[date_keyword]


class Deidentifier:
    """One export's de-identification: the same pseudonyms for the same values in every object."""

    def __init__(self, *, seed: str | None = None) -> None:
        from dicognito.anonymizer import Anonymizer

        self._anonymizer = Anonymizer(seed=seed)
        self.count = 0

    def deidentify(self, ds) -> None:
        """De-identify ``ds`` (a pydicom Dataset) in place (see the module docstring)."""
        from surgtwin.core.phi import PHI_KEYWORDS

        original = {kw: ds.get(kw) for kw in PHI_KEYWORDS if kw in ds}
        ds.remove_private_tags()
        try:
            self._anonymizer.anonymize(ds)
        except Exception as exc:  # noqa: BLE001 - a malformed element must not leak through unchanged
            raise SurgtwinError(f"de-identification failed ({type(exc).__name__}: {str(exc)[:100]})",
                                hint="export without --deidentify and de-identify with your site's tool") from None

        def scrub(dataset, elem) -> None:
            kw = elem.keyword
            if kw in FREE_TEXT:
                del dataset[elem.tag]
            elif kw in ("PatientBirthDate", "PatientSex"):
                elem.value = None
            elif kw in EMPTIED and kw in original and dataset is ds and elem.value == original[kw] and elem.value:
                if kw.endswith("Time") and _date_shifted(ds, original, kw.replace("Time", "Date")):
                    return  # shifted by whole days with its date: the time of day alone is kept
                elem.value = None

        ds.walk(scrub)
        self.mark(ds)
        self.count += 1

    def deidentify_source(self, source):
        """A copy of ``source`` (a ``SourceSeries``) with de-identified headers and UIDs."""
        from dataclasses import replace

        headers = []
        for h in source.headers:
            h2 = copy.deepcopy(h)
            self.deidentify(h2)
            headers.append(h2)
        first = headers[0]
        return replace(source, headers=headers, series_uid=str(first.SeriesInstanceUID),
                       study_uid=str(first.StudyInstanceUID), frame_of_reference_uid=str(first.FrameOfReferenceUID))

    @staticmethod
    def mark(ds) -> None:
        """Label ``ds`` as de-identified by the Basic Profile with modified dates."""
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD
        items = []
        for value, scheme, meaning in CODES:
            it = Dataset()
            it.CodeValue, it.CodingSchemeDesignator, it.CodeMeaning = value, scheme, meaning
            items.append(it)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
