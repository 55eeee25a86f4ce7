"""A realistic fake patient identity, planted into every seed, and the grep for it in all outputs."""

from __future__ import annotations

#: DICOM keyword -> planted value (none of these may ever appear in a message, log or JSON output)
PLANTED = {
    "PatientName": "DOE^JANE",
    "PatientID": "PID-483920",
    "PatientBirthDate": "19610412",
    "PatientAddress": "12 Elm Street",
    "OtherPatientIDs": "OPI-77123",
}

#: what is searched for (case-insensitive): each value, and the forms a formatter could turn it into
NEEDLES = (
    "DOE^JANE", "DOE JANE", "JANE", "PID-483920", "483920", "19610412", "1961-04-12", "12 Elm Street",
    "Elm Street", "OPI-77123", "77123",
)
_LOWER = tuple(n.lower() for n in NEEDLES)

#: NIfTI header text fields (descrip, 80 bytes; aux_file, 24 bytes) can carry identity too
NIFTI_DESCRIP = "DOE^JANE PID-483920 19610412"
NIFTI_AUX = "OPI-77123"


def plant(ds) -> None:
    """Write the planted identity into a pydicom dataset (top level)."""
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)


def find_leaks(texts) -> list[str]:
    """The planted values found in ``texts`` (strings, bytes, or (source, text) pairs), as
    '[source] needle in ...context...'."""
    found = []
    for t in texts:
        source = ""
        if isinstance(t, tuple):
            source, t = t
        if t is None:
            continue
        if isinstance(t, bytes):
            t = t.decode("latin-1")
        low = str(t).lower()
        for needle, n in zip(NEEDLES, _LOWER, strict=True):
            k = low.find(n)
            if k >= 0:
                text = str(t)
                head = text[:50].replace("\n", " ")
                found.append(f"[{source or 'text'}] {head!r} | {needle!r} in ...{text[max(0, k - 60):k + 40]!r}...")
                break
    return found
