"""DIMSE operations with one PACS node through pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE.

Each operation opens its own association and always closes it (released when done, aborted on an error
or a cancel). Only a failure to *connect* (refused, unreachable, timed out, name not resolved) is
retried, ``node.retries`` times with a short pause; a rejected association, a refused request or a
transfer that stops half way is not, because trying again would not change the answer. ACSE, DIMSE
and network timeouts are ``node.timeout_s``; a DIMSE timeout (no message from the peer in that time)
aborts the association. Cancel tokens are checked between responses; a cancelled C-FIND/C-GET/C-MOVE
sends C-CANCEL before the association is aborted.

Every failure is a ``SurgtwinError`` that names the node (and host:port), the operation and the
reason, with a hint. Nothing here logs a dataset: pynetdicom's identifier and handler logging is
switched off on import, so patient names and IDs from queries never reach a log.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from surgtwin.core.errors import SurgtwinError
from surgtwin.core.pacs.node import PacsNode
from surgtwin.core.progress import Cancelled, CancelToken

#: transfer syntaxes offered for storage: uncompressed first, then the compressed ones surgtwin can decode
STORAGE_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.1.99",
)
#: storage SOP classes pynetdicom's lists lack: Label Map Segmentation
EXTRA_STORAGE_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.7",)
MAX_CONTEXTS = 128
RETRY_PAUSE_S = 0.5
#: how long to let pynetdicom record a rejection that raced with the closed connection
REJECTION_SETTLE_S = 2.0
STATUS_SUCCESS, STATUS_CANCEL, STATUS_PENDING = 0x0000, 0xFE00, (0xFF00, 0xFF01)
STATUS_OUT_OF_RESOURCES = 0xA700

#: (operation, level model) -> pynetdicom SOP class name
_MODELS = {
    ("find", "patient"): "PatientRootQueryRetrieveInformationModelFind",
    ("find", "study"): "StudyRootQueryRetrieveInformationModelFind",
    ("get", "study"): "StudyRootQueryRetrieveInformationModelGet",
    ("move", "study"): "StudyRootQueryRetrieveInformationModelMove",
}
#: store handler: (pynetdicom event) -> DIMSE status to answer the C-STORE with
StoreHandler = Callable[[object], int]


def _configure_pynetdicom() -> None:
    from pynetdicom import _config

    _config.LOG_HANDLER_LEVEL = "none"  # its standard handlers log received identifiers (PHI)
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    # C-STORE of a file path sends the file's bytes as they are: no decoding and re-encoding (a large
    # RTSTRUCT takes pydicom seconds to encode, long enough for the association's idle timer to fire)
    _config.STORE_SEND_CHUNKED_DATASET = True
    # our C-MOVE storage SCP takes any SOP class the PACS holds, private ones too
    _config.UNRESTRICTED_STORAGE_SERVICE = True


def fail(node: PacsNode, operation: str, reason: str, hint: str) -> SurgtwinError:
    """The one error shape of this module: node, address, operation, reason and hint."""
    return SurgtwinError(f"PACS {node.label}: {operation} failed: {reason}", hint=hint)


@dataclass
class SubOperations:
    """A C-GET/C-MOVE's outcome as the peer counted it (None where it did not say)."""

    status: int = -1
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    failed_uids: list[str] = field(default_factory=list)


def _sop_class(name: str) -> str:
    from pynetdicom import sop_class

    return str(getattr(sop_class, name))


def _no_delay(event) -> None:
    """EVT_CONN_OPEN: switch Nagle's algorithm off (a PDU written in two parts otherwise waits for the
    peer's delayed ACK, ~40 ms per C-STORE on Linux)."""
    try:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def _new_ae(node: PacsNode):
    from pynetdicom import AE

    _configure_pynetdicom()
    ae = AE(ae_title=node.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    ae.connection_timeout = min(node.timeout_s, 30.0)
    ae.maximum_pdu_size = 0  # no limit on what we receive
    return ae


def _resolve(node: PacsNode, operation: str) -> str:
    try:
        return socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, UnicodeError) as exc:
        raise fail(node, operation, f"cannot resolve host {node.host!r} ({exc.strerror or exc})",
                   "check the host name in the node's settings, or use its IP address") from None


def _probe(address: str, node: PacsNode) -> str | None:
    """Why a TCP connection to the node fails (None when it connects)."""
    try:
        with socket.create_connection((address, node.port), timeout=min(node.timeout_s, 5.0)):
            return None
    except ConnectionRefusedError:
        return "connection refused (nothing listens on that port)"
    except TimeoutError:
        return f"no answer to the TCP connection within {min(node.timeout_s, 5.0):g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _tls_probe(address: str, node: PacsNode, context) -> str:
    """What the TLS layer says about a connection to the node (its alert, or a verification error)."""
    import ssl

    try:
        with socket.create_connection((address, node.port), timeout=min(node.timeout_s, 5.0)) as raw:
            with context.wrap_socket(raw, server_hostname=node.host) as tls:
                tls.settimeout(0.5)
                tls.recv(1)  # TLS 1.3 servers refuse a client certificate only after the handshake
    except ssl.SSLError as exc:
        return exc.reason or str(exc)
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return "the node closed the connection"


def _comment(status) -> str:
    """' (the node's ErrorComment)' when it gave one."""
    text = str(status.get("ErrorComment", "") or "").strip()
    return f" ({text})" if text else ""


def _rejection(assoc) -> str:
    try:
        prim = assoc.acceptor.primitive
        return f"association rejected by the node ({prim.result_str}, {prim.source_str}: {prim.reason_str})"
    except AttributeError:
        return "association rejected by the node"


@contextmanager
def association(node: PacsNode, operation: str, contexts, *, ext_neg=None, handlers=None):
    """An established association with ``node`` (released on leaving, aborted on an exception)."""
    from pynetdicom import evt

    ae = _new_ae(node)
    for cx in contexts:
        ae.add_requested_context(cx.abstract_syntax, cx.transfer_syntax)
    address = _resolve(node, operation)
    tls = (node.ssl_context(), node.host) if node.uses_tls else None
    assoc = None
    for attempt in range(node.retries + 1):
        started = time.monotonic()
        assoc = ae.associate(address, node.port, ae_title=node.ae_title, ext_neg=ext_neg,
                             evt_handlers=[(evt.EVT_CONN_OPEN, _no_delay), *(handlers or [])], tls_args=tls)
        if assoc.is_established:
            break
        if not assoc.is_rejected and assoc.ident is not None:  # started (a refused connection never starts it)
            # the node's A-ASSOCIATE-RJ and its closing the connection race in pynetdicom: ``associate``
            # can return on the closed connection before the negotiation thread has recorded the rejection
            assoc.join(timeout=REJECTION_SETTLE_S)
        if assoc.is_rejected:
            raise fail(node, operation, _rejection(assoc),
                       f"check that the node's AE title is {node.ae_title!r} and that it knows our AE title "
                       f"{node.calling_ae!r} (its list of modalities)")
        prim = getattr(assoc.acceptor, "primitive", None)
        if prim is not None and getattr(prim, "result", None) == 0:
            raise fail(node, operation, "the node accepted the association but none of the object types "
                       "(SOP classes and transfer syntaxes) asked for", "the node does not support this service or "
                       "these objects; its configuration lists what it accepts")
        why = _probe(address, node)
        if why is None:
            waited = time.monotonic() - started
            if waited >= 0.9 * node.timeout_s:
                why = f"the node accepted the connection but did not answer the association request within " \
                      f"{node.timeout_s:g} s"
                hint = "the server may be hung or overloaded; try again later or raise the node's timeout"
            elif tls:
                why = f"the TLS handshake failed ({_tls_probe(address, node, tls[0])})"
                hint = "check the node's TLS certificates (tls_ca, tls_cert, tls_key) and that it expects TLS here"
            else:
                why = "the node closed the connection during association"
                hint = ("check the node's port and AE titles, and whether it expects TLS on this port "
                        "(then set tls_ca)")
            raise fail(node, operation, why, hint)
        if attempt < node.retries:
            time.sleep(RETRY_PAUSE_S * (attempt + 1))
    else:
        tries = f" ({node.retries + 1} attempts)" if node.retries else ""
        raise fail(node, operation, f"cannot connect to {node.address}: {why}{tries}",
                   "check that the PACS is running and reachable, and its host and port")
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def _contexts(*names: str):
    from pynetdicom import build_context

    return [build_context(_sop_class(n)) for n in names]


def echo(node: PacsNode) -> float:
    """C-ECHO; the round trip of the echo itself in milliseconds (association set-up not counted)."""
    with association(node, "C-ECHO", _contexts("Verification")) as assoc:
        t0 = time.perf_counter()
        status = assoc.send_c_echo()
        ms = (time.perf_counter() - t0) * 1000.0
        _check_final(node, "C-ECHO", status)
    return ms


def _check_final(node: PacsNode, operation: str, status) -> int:
    if status is None or "Status" not in status:
        raise fail(node, operation, f"no response within {node.timeout_s:g} s (association aborted)",
                   "the node may be overloaded or hung; try again, or raise the node's timeout")
    code = int(status.Status)
    if code not in (STATUS_SUCCESS, STATUS_CANCEL) and code not in STATUS_PENDING and code & 0xF000 != 0xB000:
        raise fail(node, operation, f"the node answered with status 0x{code:04X}{_comment(status)}",
                   "the node refused the request; its log says why (permissions for our AE title, unknown keys)")
    return code


def find(node: PacsNode, model: str, identifier, *, limit: int, cancel: CancelToken | None = None):
    """C-FIND: (answers as pydicom Datasets, truncated). At ``limit`` answers a C-CANCEL is sent and
    ``truncated`` is True."""
    key = ("find", model)
    with association(node, "C-FIND", _contexts(_MODELS[key])) as assoc:
        answers, truncated = [], False
        responses = assoc.send_c_find(identifier, _sop_class(_MODELS[key]), msg_id=1)
        for status, ds in responses:
            code = _check_final(node, "C-FIND", status)
            if code not in STATUS_PENDING:
                break
            if ds is not None:
                answers.append(ds)
            if len(answers) >= limit or (cancel is not None and cancel.cancelled):
                truncated = len(answers) >= limit
                _cancel_and_drain(assoc, responses, model=_sop_class(_MODELS[key]))
                if not truncated:
                    raise Cancelled("C-FIND cancelled")
                break
    return answers, truncated


def _cancel_and_drain(assoc, responses, *, model: str, deadline_s: float = 2.0) -> None:
    """Send C-CANCEL and read the remaining responses for a moment; abort if the peer goes on."""
    try:
        assoc.send_c_cancel(1, query_model=model)
    except (RuntimeError, ValueError):
        return
    t_end = time.monotonic() + deadline_s
    for status, _ in responses:
        if "Status" not in status or int(status.Status) not in STATUS_PENDING or time.monotonic() > t_end:
            break
    if time.monotonic() > t_end:
        assoc.abort()


def storage_contexts():
    """Storage presentation contexts for C-GET: pynetdicom's 120 common classes and label-map SEG."""
    from pynetdicom import StoragePresentationContexts, build_context

    classes = [*(c.abstract_syntax for c in StoragePresentationContexts), *EXTRA_STORAGE_CLASSES]
    return [build_context(uid, list(STORAGE_TRANSFER_SYNTAXES)) for uid in classes]


def retrieve(node: PacsNode, identifier, *, method: str, on_store: StoreHandler,
             cancel: CancelToken | None = None) -> SubOperations:
    """C-GET (``method="get"``) or C-MOVE to ourselves (``"move"``, with a storage SCP on
    ``node.store_port`` for the time of the transfer). Each received instance goes to ``on_store``."""
    from pynetdicom import build_role, evt

    operation = "C-GET" if method == "get" else "C-MOVE"
    if method not in ("get", "move"):
        raise SurgtwinError(f"retrieve method {method!r} is not 'get' or 'move'")

    def handle(event):
        if cancel is not None and cancel.cancelled:
            return STATUS_OUT_OF_RESOURCES
        return on_store(event)

    model = _sop_class(_MODELS[(method, "study")])
    if method == "get":
        # the retrieve model plus storage contexts (SCP role) within the 128-context limit
        store_cx = storage_contexts()[: MAX_CONTEXTS - 1]
        roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in store_cx]
        with association(node, operation, [*_contexts(_MODELS[("get", "study")]), *store_cx], ext_neg=roles,
                         handlers=[(evt.EVT_C_STORE, handle)]) as assoc:
            return _follow(node, operation, assoc, assoc.send_c_get(identifier, model), model, cancel)
    server = _storage_server(node, handle)
    try:
        with association(node, operation, _contexts(_MODELS[("move", "study")])) as assoc:
            responses = assoc.send_c_move(identifier, node.calling_ae, model)
            return _follow(node, operation, assoc, responses, model, cancel)
    finally:
        server.shutdown()


def _storage_server(node: PacsNode, handle):
    """Our storage SCP for C-MOVE: any storage SOP class, called as ``node.calling_ae``."""
    from pynetdicom import AllStoragePresentationContexts, evt

    ae = _new_ae(node)
    ae.require_called_aet = True
    for uid in [*(cx.abstract_syntax for cx in AllStoragePresentationContexts), *EXTRA_STORAGE_CLASSES]:
        ae.add_supported_context(uid, list(STORAGE_TRANSFER_SYNTAXES))
    try:
        return ae.start_server(("", node.store_port), block=False,
                               evt_handlers=[(evt.EVT_CONN_OPEN, _no_delay), (evt.EVT_C_STORE, handle)])
    except OSError as exc:
        raise fail(node, "C-MOVE", f"cannot listen for the images on port {node.store_port} ({exc.strerror or exc})",
                   "another program (or another retrieve) uses that port: wait, or change the node's store port "
                   "(and the PACS's entry for us), or use C-GET") from None


def _follow(node, operation, assoc, responses, model, cancel) -> SubOperations:
    """Read C-GET/C-MOVE responses to the end; cancel (C-CANCEL, abort) when asked."""
    result = SubOperations()
    for status, identifier in responses:
        if "Status" not in status:
            raise fail(node, operation, f"the transfer stopped: no message from the node within {node.timeout_s:g} s "
                       "or the connection was lost (association aborted)",
                       "the node may be hung or the network down; try again (nothing half-written is kept)")
        result.status = int(status.Status)
        for attr, name in (("completed", "NumberOfCompletedSuboperations"),
                           ("failed", "NumberOfFailedSuboperations"),
                           ("warning", "NumberOfWarningSuboperations")):
            value = status.get(name)
            if value is not None:
                setattr(result, attr, int(value))
        if result.status in STATUS_PENDING:
            if cancel is not None and cancel.cancelled:
                _cancel_and_drain(assoc, responses, model=model)
                raise Cancelled(f"{operation} cancelled")
            continue
        if identifier is not None:
            uids = identifier.get("FailedSOPInstanceUIDList", "")
            result.failed_uids = [u for u in ([uids] if isinstance(uids, str) else list(uids)) if u]
        break
    if cancel is not None and cancel.cancelled:
        raise Cancelled(f"{operation} cancelled")
    if result.status == STATUS_CANCEL:
        raise fail(node, operation, "the node cancelled the transfer", "try again")
    if result.status != STATUS_SUCCESS and result.status & 0xF000 != 0xB000:
        reason = f"the node could not carry out the request (status 0x{result.status:04X}){_comment(status)}"
        if operation == "C-MOVE":
            hint = (f"the node must know our AE title {node.calling_ae} as a move destination (this computer, port "
                    f"{node.store_port}): add it among its modalities, or use C-GET; else its log says why "
                    "(a damaged instance, or one our side refused)")
        else:
            hint = ("its log says why (a damaged instance, or an object type surgtwin does not ask for); "
                    "C-MOVE may work where C-GET does not")
        raise fail(node, operation, reason, hint)
    return result


def store(node: PacsNode, files: list[tuple[Path, str, str]], *, progress: Callable[[int, Path], None] | None = None,
          cancel: CancelToken | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """C-STORE ``(path, sop_class_uid, transfer_syntax_uid)`` files; (sent, [(path, reason), ...]).
    Each file goes as it is on disk, so each (SOP class, transfer syntax) pair gets its own presentation
    context; one association per 128 pairs. A pair the node does not accept fails its files."""
    from pynetdicom import build_context

    pairs = sorted({(sop, ts) for _, sop, ts in files})
    sent: list[Path] = []
    failed: list[tuple[Path, str]] = []
    done = 0
    for start in range(0, len(pairs), MAX_CONTEXTS):
        chunk = set(pairs[start:start + MAX_CONTEXTS])
        contexts = [build_context(sop, [ts]) for sop, ts in sorted(chunk)]
        with association(node, "C-STORE", contexts) as assoc:
            accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
            for n, (path, sop, ts) in enumerate((f for f in files if (f[1], f[2]) in chunk), start=1):
                if cancel is not None and cancel.cancelled:
                    raise Cancelled("C-STORE cancelled")
                if (sop, ts) in accepted:
                    reason = _store_one(assoc, path, msg_id=n % 65535 + 1)
                else:
                    reason = f"the node does not accept this object type ({sop}) in transfer syntax {ts}"
                if reason == "aborted":
                    raise fail(node, "C-STORE", f"the association was lost after {len(sent)} of {len(files)} files",
                               "the node may be hung or the network down; send again (a PACS keeps one copy)")
                (failed.append((path, reason)) if reason else sent.append(path))
                done += 1
                if progress is not None:
                    progress(done, path)
    return sent, failed


def _store_one(assoc, path: Path, msg_id: int) -> str:
    """'' when stored, 'aborted' when the association went away, else why the node refused it."""
    try:
        status = assoc.send_c_store(path, msg_id=msg_id)
    except (ValueError, AttributeError, OSError) as exc:
        return f"not sent: {exc}"
    except RuntimeError:
        return "aborted"
    if status is None or "Status" not in status:
        return "aborted"
    code = int(status.Status)
    if code == STATUS_SUCCESS or code & 0xF000 == 0xB000:
        return ""
    return f"refused with status 0x{code:04X}{_comment(status)}"
