"""``vrbridge models``: the library of public pretrained networks; ``vrbridge models get NAME`` fetches one.

The list shows each short name with its architecture, resolution, approximate size, licence, whether it is
in the cache, and the source URL; ``get`` downloads into the cache folder with a progress bar, resuming a
cut download (see bridge/stylegan/library.py). ``vrbridge run --network NAME`` then runs it.
"""
from __future__ import annotations

import argparse
import json

HELP = "list well-known pretrained StyleGAN networks; `models get NAME` downloads one into the cache"


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", default="list", choices=["list", "get", "path"],
                        help="list (default), get NAME (download), path NAME (print the cached file)")
    parser.add_argument("name", nargs="?", default="", help="short model name (see the list)")
    parser.add_argument("--json", action="store_true", help="list as JSON")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")


def _model(name: str):
    from bridge.cli import UserError
    from bridge.stylegan.library import CATALOG, find_model

    if not name:
        raise UserError("give a model name, e.g. `vrbridge models get sg3r-afhqv2-512` (list: `vrbridge models`)")
    model = find_model(name, CATALOG)
    if model is None:
        near = [m.name for m in CATALOG if name.lower() in m.name][:5]
        raise UserError(f"no model named {name!r} in the library" + (f" (did you mean {', '.join(near)}?)"
                                                                       if near else "; see `vrbridge models`"))
    return model


def _list(as_json: bool) -> int:
    from bridge.stylegan.library import CATALOG, cache_dir, cached_path

    rows = [{"name": m.name, "architecture": m.architecture, "dataset": m.dataset, "resolution": m.resolution,
             "conditional": m.conditional, "approx_mb": m.approx_mb, "licence": m.licence, "url": m.url,
             "sha256": m.sha256, "hash_source": m.hash_source, "cached": cached_path(m).is_file()}
            for m in CATALOG]
    if as_json:
        print(json.dumps({"cache": str(cache_dir()), "models": rows}, indent=1))
        return 0
    print(f"{'name':<22}{'architecture':<15}{'res':>5}  {'size':>8}  cached  source")
    for r in rows:
        label = r["architecture"] + (" (cond.)" if r["conditional"] else "")
        print(f"{r['name']:<22}{label:<15}{r['resolution']:>5}  ~{r['approx_mb']:>4} MB  "
              f"{'yes' if r['cached'] else '-':<6}  {r['url']}")
    print(f"\ncache: {cache_dir()}  (set VRBRIDGE_MODELS_DIR to move it)")
    print(f"licence: {CATALOG[0].licence}")
    print(f"hashes: {CATALOG[0].hash_source}; `models get` prints each file's sha256")
    print("get one: vrbridge models get NAME    run it: vrbridge run --network NAME")
    return 0


def main(args) -> int:
    import sys

    from bridge.cli import UserError
    from bridge.stylegan.library import LibraryError, cached_path, download, sha256_of

    if args.action == "list":
        return _list(args.json)
    model = _model(args.name)
    if args.action == "path":
        path = cached_path(model)
        if not path.is_file():
            raise UserError(f"{model.name} is not in the cache; run `vrbridge models get {model.name}`")
        print(path)
        return 0
    print(f"{model.name}: {model.url} (~{model.approx_mb} MB) -> {cached_path(model)}", flush=True)
    try:
        path = download(model, progress=sys.stderr.isatty() if args.progress is None else args.progress)
    except LibraryError as exc:
        raise UserError(str(exc)) from None
    check = "matches the published hash" if model.sha256 else "no published hash to check against"
    print(f"{path} ({path.stat().st_size} bytes, sha256 {sha256_of(path)}; {check})")
    return 0
