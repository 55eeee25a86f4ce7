"""`surgtwin pacs ...`: DICOM networking with a PACS (C-ECHO, C-FIND, C-GET/C-MOVE, C-STORE).

    surgtwin pacs nodes                                   list the configured nodes
    surgtwin pacs nodes add NAME --ae AE --host H --port P [--calling-ae SURGTWIN] [--store-port N] ...
    surgtwin pacs nodes remove NAME
    surgtwin pacs echo NODE
    surgtwin pacs find NODE [--level patient|study|series] [--patient-id X] [--name X] [--date X]
                            [--modality CT] [--study UID] [--series UID] [--limit N] [--json]
    surgtwin pacs get NODE --study UID [--series UID] [--move] [--open-case OUT.stwin]
    surgtwin pacs send NODE (FILES... | --case CASE.stwin [--deidentify] [--no-snapshots])

NODE is a configured node's name or inline ``AE@host:port``. ``find`` prints the patients' names and IDs
it finds: they are the user's own query results, shown on the terminal and never logged.
"""

from __future__ import annotations

FIND_COLUMNS = {
    "patient": ("patient_name", "patient_id", "birth_date", "n_instances"),
    "study": ("study_date", "patient_name", "patient_id", "modalities", "n_series", "n_instances",
              "study_description", "study_uid"),
    "series": ("series_number", "modality", "n_instances", "series_description", "series_uid"),
}


def add_parser(sub):
    p = sub.add_parser("pacs", help="find, retrieve and send DICOM with a PACS (C-ECHO/FIND/GET/MOVE/STORE)",
                       description="DICOM networking with a PACS. NODE is a configured node's name or AE@host:port. "
                                   "NOT FOR CLINICAL USE.")
    ps = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)

    nodes = ps.add_parser("nodes", help="list, add or remove configured PACS nodes")
    ns = nodes.add_subparsers(dest="nodes_command", metavar="ACTION")
    add = ns.add_parser("add", help="add (or replace) a node")
    add.add_argument("name")
    add.add_argument("--ae", required=True, help="the node's AE title")
    add.add_argument("--host", required=True)
    add.add_argument("--port", required=True, type=int)
    add.add_argument("--calling-ae", default="SURGTWIN", help="our AE title (default SURGTWIN)")
    add.add_argument("--store-port", type=int, default=11113,
                     help="our storage SCP's port for C-MOVE (the node must know us there; default 11113)")
    add.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    add.add_argument("--retries", type=int, default=1, help="connection retries (default 1)")
    add.add_argument("--tls-ca", default="", help="CA certificate (PEM): use TLS and check the node against it")
    add.add_argument("--tls-cert", default="", help="our client certificate (PEM), with --tls-key")
    add.add_argument("--tls-key", default="", help="our client key (PEM)")
    add.add_argument("--research", action="store_true",
                     help="a research archive: may receive de-identified results (send --deidentify)")
    rm = ns.add_parser("remove", help="remove a node")
    rm.add_argument("name")

    echo = ps.add_parser("echo", help="C-ECHO a node")
    echo.add_argument("node", metavar="NODE")

    find = ps.add_parser("find", help="C-FIND patients, studies or series")
    find.add_argument("node", metavar="NODE")
    find.add_argument("--level", choices=("patient", "study", "series"), default="study")
    find.add_argument("--patient-id", default="")
    find.add_argument("--name", default="", help="patient name; wildcards * and ?, e.g. 'DOE^J*'")
    find.add_argument("--date", default="", help="study date YYYYMMDD or range YYYYMMDD-YYYYMMDD")
    find.add_argument("--modality", default="", help="e.g. CT")
    find.add_argument("--study", default="", help="study instance UID (series level: the study's series)")
    find.add_argument("--series", default="", help="series instance UID (series level)")
    find.add_argument("--limit", type=int, default=500, help="at most this many results (default 500)")
    find.add_argument("--json", action="store_true", help="print JSON")

    get = ps.add_parser("get", help="retrieve a study or series into the local cache (C-GET, or C-MOVE)")
    get.add_argument("node", metavar="NODE")
    get.add_argument("--study", required=True, help="study instance UID")
    get.add_argument("--series", default="", help="only this series (default: every series of the study)")
    get.add_argument("--move", action="store_true", help="C-MOVE to our storage SCP instead of C-GET")
    get.add_argument("--open-case", metavar="OUT", help="make a case of the retrieved series and save it as OUT.stwin")

    send = ps.add_parser("send", help="C-STORE DICOM files/folders, or a case's results (SEG, RTSTRUCT, snapshots)")
    send.add_argument("node", metavar="NODE")
    send.add_argument("files", nargs="*", metavar="FILES", help="DICOM files or folders")
    send.add_argument("--case", metavar="CASE", help="send this case's results instead of files")
    send.add_argument("--deidentify", action="store_true",
                      help="--case: de-identified results and CT (only to a node added with --research)")
    send.add_argument("--no-snapshots", action="store_true", help="--case: no Secondary Capture snapshots")
    return p


def run(args) -> int:
    return {"nodes": _nodes, "echo": _echo, "find": _find, "get": _get, "send": _send}[args.pacs_command](args)


def _node(text: str):
    from surgtwin.services import pacs

    return pacs.node_named(text)


def _nodes(args) -> int:
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.core.pacs import PacsNode
    from surgtwin.services import pacs

    nodes = pacs.load_nodes()
    if args.nodes_command == "add":
        node = PacsNode(name=args.name, ae_title=args.ae, host=args.host, port=args.port, calling_ae=args.calling_ae,
                        store_port=args.store_port, timeout_s=args.timeout, retries=args.retries,
                        tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key, research=args.research)
        replaced = any(n.name == node.name for n in nodes)
        pacs.save_nodes([*(n for n in nodes if n.name != node.name), node])
        print(f"{'replaced' if replaced else 'added'} {node.label} in {pacs.nodes_path()}")
        return 0
    if args.nodes_command == "remove":
        if not any(n.name == args.name for n in nodes):
            raise SurgtwinError(f"no PACS node named {args.name!r}", path=pacs.nodes_path(),
                                hint="'surgtwin pacs nodes' lists them")
        pacs.save_nodes([n for n in nodes if n.name != args.name])
        print(f"removed {args.name}")
        return 0
    if not nodes:
        print(f"no PACS nodes configured ({pacs.nodes_path()}); add one: surgtwin pacs nodes add NAME --ae AE "
              "--host HOST --port PORT")
        return 0
    for n in nodes:
        extra = [f"calling AE {n.calling_ae}", f"store port {n.store_port}", f"timeout {n.timeout_s:g} s",
                 f"retries {n.retries}"] + (["TLS"] if n.uses_tls else []) + (["research"] if n.research else [])
        print(f"{n.name}: {n.ae_title}@{n.address} ({', '.join(extra)})")
    return 0


def _echo(args) -> int:
    from surgtwin.services import pacs

    node = _node(args.node)
    ms = pacs.echo(node)
    print(f"{node.label}: C-ECHO ok, {ms:.1f} ms")
    return 0


def _find(args) -> int:
    import json

    from surgtwin.services import pacs

    node = _node(args.node)
    rows = pacs.find(node, level=args.level, patient_id=args.patient_id, patient_name=args.name,
                     study_date=args.date, modality=args.modality, study_uid=args.study, series_uid=args.series,
                     limit=args.limit)
    if args.json:
        print(json.dumps({"node": node.name, "level": args.level, "truncated": rows.truncated, "results": rows},
                         indent=1))
        return 0
    cols = FIND_COLUMNS[args.level]
    table = [[("" if r[c] is None else str(r[c])) for c in cols] for r in rows]
    widths = [max([len(c), *(len(t[i]) for t in table)]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip())
    more = f" (limit {args.limit} reached: narrow the query or raise --limit)" if rows.truncated else ""
    noun = {"patient": "patient(s)", "study": "study(ies)", "series": "series"}[args.level]
    print(f"{len(rows)} {noun} on {node.label}{more}")
    return 0


def _get(args) -> int:
    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.case import SUFFIX
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pacs

    if args.open_case and not args.open_case.endswith(SUFFIX):
        raise SurgtwinError(f"the case name must end in {SUFFIX}", path=args.open_case,
                            hint=f"e.g. {args.open_case}{SUFFIX}")
    node = _node(args.node)
    folders = pacs.retrieve(node, args.study, args.series, method="move" if args.move else "get",
                            progress=ProgressBar("retrieve"))
    for f in folders:
        print(f"{f} ({sum(1 for _ in f.glob('*.dcm'))} instances)")
    if args.open_case:
        from surgtwin.services import pipeline

        if len(folders) != 1:
            raise SurgtwinError(f"--open-case needs one series, the study has {len(folders)}",
                                hint="pass --series UID (see: surgtwin pacs find NODE --level series --study UID)")
        case = pipeline.new_case(folders[0], progress=ProgressBar("opening"))
        out = pipeline.save_case(case, args.open_case, progress=ProgressBar("saving"))
        print(f"saved case {out}")
    return 0


def _send(args) -> int:
    from pathlib import Path

    from surgtwin.cli.progress_bar import ProgressBar
    from surgtwin.core.errors import SurgtwinError
    from surgtwin.services import pacs

    if bool(args.files) == bool(args.case):
        raise SurgtwinError("pass either FILES or --case CASE", hint="e.g. surgtwin pacs send NODE out/ or --case a.stwin")
    if (args.deidentify or args.no_snapshots) and not args.case:
        raise SurgtwinError("--deidentify and --no-snapshots go with --case")
    node = _node(args.node)
    if args.files:
        counts = pacs.send(node, args.files, progress=ProgressBar("send"))
        skipped = f", {counts['skipped']} non-DICOM files skipped" if counts["skipped"] else ""
        print(f"sent {counts['sent']} files to {node.label}{skipped}")
        return 0
    from surgtwin.services import pipeline

    path = Path(args.case)
    if not path.exists():
        raise SurgtwinError("no such case", path=path)
    case = pipeline.load_case(path, progress=ProgressBar("opening")) if pipeline.is_case_path(path) else \
        pipeline.new_case(path, progress=ProgressBar("opening"))
    res = pacs.send_case_results(case, node, deidentify=args.deidentify, snapshots=[] if args.no_snapshots else None,
                                 progress=ProgressBar("send"))
    for w in res["warnings"]:
        print(f"warning: {w}")
    kinds = ", ".join(sorted(res["series_uids"]))
    note = " (de-identified, with the de-identified CT)" if res["deidentified"] else ""
    print(f"sent {res['sent']} files ({kinds}) to {node.label}{note}")
    print("NOT FOR CLINICAL USE")
    return 0

