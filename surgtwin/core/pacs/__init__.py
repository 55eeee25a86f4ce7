"""DICOM networking with a PACS (no Qt, no VTK): nodes, DIMSE operations and the local series cache.

* ``node.PacsNode``: a remote node (AE title, host, port, our calling AE, timeouts, retries, TLS);
* ``dimse``: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE with pynetdicom (imported when first used);
* ``cache.SeriesCache``: one folder per complete, verified series; transfers land in a pending folder
  that is renamed only when complete, so a failed or cancelled transfer leaves nothing behind.

The app and the CLI call ``surgtwin.services.pacs``, which puts these together.
"""

from surgtwin.core.pacs.node import PacsNode

__all__ = ["PacsNode"]
