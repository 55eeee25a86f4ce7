"""A PACS node: where a DICOM server is, who we say we are, and how long to wait for it.

``PacsNode`` is a frozen dataclass checked when it is made (a bad AE title, port or timeout raises a
``SurgtwinError`` naming the field and what is allowed). It round-trips through JSON (``to_dict`` /
``from_dict``) and can be written inline as ``AE@host:port`` (``PacsNode.parse``).

``store_port`` is the port of surgtwin's own storage SCP for C-MOVE: the PACS must know our
``calling_ae`` at this machine's address and that port (its "modality" entry for us), since C-MOVE
makes the PACS open a second association *to us* to deliver the images. C-GET needs no port.

``research`` marks a research/teaching archive: only such a node may receive de-identified results
(sending pseudonymised copies into a clinical PACS would file them under a new, fake patient).

TLS is optional: with ``tls_ca`` set the association runs over TLS and the server certificate is
checked against that CA (not its host name: PACS certificates seldom name the address used);
``tls_cert``/``tls_key`` add a client certificate (both or neither). Our C-MOVE storage SCP listens
without TLS, so over TLS use C-GET, or have the PACS send its C-MOVE results in the clear.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from surgtwin.core.errors import SurgtwinError

DEFAULT_CALLING_AE = "SURGTWIN"
DEFAULT_STORE_PORT = 11113
#: AE titles: 1-16 characters of the default character repertoire, no backslash, not all spaces
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9._:\-\[\]%]+$")
_INLINE_RE = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d{1,5})$")


def check_ae_title(value: str, field: str = "ae_title") -> str:
    """``value`` stripped of padding if it is a valid DICOM AE title, else a SurgtwinError."""
    text = str(value).strip()
    if not _AE_RE.match(text):
        raise SurgtwinError(f"{field} {value!r} is not a valid DICOM AE title",
                            hint="1 to 16 printable ASCII characters, no backslash, e.g. ORTHANC")
    return text


@dataclass(frozen=True)
class PacsNode:
    """One remote DICOM node (PACS, archive, workstation) and how surgtwin talks to it."""

    name: str
    ae_title: str
    host: str
    port: int
    calling_ae: str = DEFAULT_CALLING_AE
    timeout_s: float = 30.0
    retries: int = 1
    store_port: int = DEFAULT_STORE_PORT
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    research: bool = False

    def __post_init__(self) -> None:
        name = str(self.name).strip()
        if not name or len(name) > 64 or any(c in name for c in "\n\r\t"):
            raise SurgtwinError(f"node name {self.name!r} must be 1 to 64 characters on one line")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title, "ae_title"))
        object.__setattr__(self, "calling_ae", check_ae_title(self.calling_ae, "calling_ae"))
        host = str(self.host).strip()
        if not host or len(host) > 253 or not _HOST_RE.match(host):
            raise SurgtwinError(f"host {self.host!r} is not a host name or IP address",
                                hint="e.g. pacs.hospital.local or 10.0.0.5")
        object.__setattr__(self, "host", host)
        for field in ("port", "store_port"):
            object.__setattr__(self, field, _int_in(getattr(self, field), field, 1, 65535))
        object.__setattr__(self, "retries", _int_in(self.retries, "retries", 0, 10))
        try:
            timeout = float(self.timeout_s)
        except (TypeError, ValueError):
            timeout = float("nan")
        if not 0.1 <= timeout <= 3600:
            raise SurgtwinError(f"timeout_s {self.timeout_s!r} must be a number of seconds from 0.1 to 3600")
        object.__setattr__(self, "timeout_s", timeout)
        for field in ("tls_cert", "tls_key", "tls_ca"):
            object.__setattr__(self, field, str(getattr(self, field) or ""))
        if not isinstance(self.research, bool):
            raise SurgtwinError(f"research {self.research!r} must be true or false")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SurgtwinError(f"node {name!r}: tls_cert and tls_key go together",
                                hint="give both the client certificate and its private key, or neither")
        if self.tls_cert and not self.tls_ca:
            raise SurgtwinError(f"node {name!r}: a client certificate needs tls_ca too",
                                hint="the CA certificate that signed the server's certificate")

    @property
    def address(self) -> str:
        """``host:port`` as error messages name it."""
        return f"{self.host}:{self.port}"

    @property
    def label(self) -> str:
        """``NAME (AE@host:port)``: how messages name this node."""
        inline = f"{self.ae_title}@{self.address}"
        return inline if self.name == inline else f"{self.name} ({inline})"

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_ca)

    def ssl_context(self):
        """An ``ssl.SSLContext`` for this node's TLS settings, or None without TLS."""
        if not self.uses_tls:
            return None
        import ssl

        for field in ("tls_ca", "tls_cert", "tls_key"):
            value = getattr(self, field)
            if value and not Path(value).is_file():
                raise SurgtwinError(f"node {self.name!r}: {field} file not found", path=value,
                                    hint="fix the path in the node's settings")
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca)
            ctx.check_hostname = False  # PACS certificates rarely name the address used; the CA is checked
            if self.tls_cert:
                ctx.load_cert_chain(self.tls_cert, self.tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise SurgtwinError(f"node {self.name!r}: the TLS certificates could not be loaded: {exc}",
                                hint="PEM files: tls_ca the CA, tls_cert/tls_key our certificate and key") from exc
        return ctx

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PacsNode:
        if not isinstance(data, dict):
            raise SurgtwinError(f"a PACS node must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SurgtwinError(f"unknown PACS node field(s): {', '.join(unknown)}",
                                hint=f"known fields: {', '.join(sorted(known))}")
        missing = [f for f in ("name", "ae_title", "host", "port") if f not in data]
        if missing:
            raise SurgtwinError(f"PACS node {data.get('name', '?')!r} lacks {', '.join(missing)}")
        return cls(**data)

    @classmethod
    def parse(cls, text: str, **overrides) -> PacsNode:
        """A node written inline as ``AE@host:port`` (its name is that text)."""
        m = _INLINE_RE.match(str(text).strip())
        if not m:
            raise SurgtwinError(f"{text!r} is neither a known node name nor AE@host:port",
                                hint="e.g. ORTHANC@127.0.0.1:4242, or add it: surgtwin pacs nodes add")
        host = m["host"].strip("[]")
        return cls(name=str(text).strip(), ae_title=m["ae"], host=host, port=int(m["port"]), **overrides)


def _int_in(value, field: str, lo: int, hi: int) -> int:
    try:
        number = int(value)
        ok = number == value or isinstance(value, str)
    except (TypeError, ValueError):
        ok = False
    if not ok or not lo <= number <= hi:
        raise SurgtwinError(f"{field} {value!r} must be a whole number from {lo} to {hi}")
    return number
