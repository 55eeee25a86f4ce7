from surgtwin.cli.main import main

if __name__ == "__main__":  # guarded: Dask's worker processes re-import the main module when they spawn
    raise SystemExit(main())
