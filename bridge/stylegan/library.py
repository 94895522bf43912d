"""The model library: NVIDIA's public StyleGAN2-ADA / StyleGAN3 pickles by short name, a cache folder, and a
resumable, bounded download.

    vrbridge models                      list the catalog (and what is cached)
    vrbridge models get NAME             download one into the cache (progress bar, resumable)
    vrbridge run --network NAME          run a cached one; --allow-download fetches it first

The catalog lists only NVIDIA's official pickles, at the URLs NVIDIA's READMEs give (NVlabs/stylegan3
README: the NGC catalog's ``api.ngc.nvidia.com/v2/models/nvidia/research/stylegan{2,3}/versions/1/files/``;
NVlabs/stylegan2-ada-pytorch README: ``nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/``).
NVIDIA publishes no checksum for any of them, so no hash is pinned (``sha256`` None, ``hash_source`` says
so); a download is then checked by its length (the server's Content-Length) and its format (a network
pickle), and its sha256 is printed so a user can pin it. An entry with a published hash is verified
against it and a mismatch is refused (the partial file is deleted). Sizes are approximate (the server's
exact Content-Length is shown when a download starts).

Cache folder: ``$VRBRIDGE_MODELS_DIR``, else ``$XDG_CACHE_HOME/vrbridge/models``, else
``~/.cache/vrbridge/models``. A download goes to ``NAME.part`` and is renamed when complete; a ``.part``
left by a cut connection is resumed with an HTTP Range request (a server that ignores Range makes it start
over). Bounded: connect/read timeout, at most :data:`MAX_BYTES`, a few resumes per call.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["LibraryModel", "CATALOG", "LibraryError", "find_model", "cache_dir", "cached_path", "download",
           "resolve_network"]

MAX_BYTES = 4 << 30          # no StyleGAN pickle is near 4 GiB; a server that says otherwise is wrong
TIMEOUT_S = 30.0             # connect and per-read timeout
CHUNK = 1 << 20
RESUMES = 3                  # extra attempts (each resuming) after a cut connection, per call

NGC3 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
NGC2 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"
ADA = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
NVIDIA_NC = ("NVIDIA Source Code License-NC (non-commercial research use; read the licence on the "
             "publisher's page before a paid show)")
NO_HASH = "none published (NVIDIA's README and NGC page give the URL only)"


class LibraryError(Exception):
    """A library name, cache or download problem, with a one-line reason."""


@dataclass(frozen=True)
class LibraryModel:
    name: str
    architecture: str          # StyleGAN2, StyleGAN2-ADA, StyleGAN3-T, StyleGAN3-R
    dataset: str
    resolution: int
    url: str
    approx_mb: int             # approximate download size
    licence: str = NVIDIA_NC
    sha256: str | None = None
    hash_source: str = NO_HASH
    conditional: bool = False

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1] if self.url.endswith(".pkl") else f"{self.name}.pkl"


def _sg3(kind: str, data: str, res: int, mb: int) -> LibraryModel:
    return LibraryModel(f"sg3{kind}-{data}-{res}", f"StyleGAN3-{kind.upper()}", data, res,
                        f"{NGC3}stylegan3-{kind}-{data}-{res}x{res}.pkl", mb)


def _sg2(data: str, res: int, mb: int, conditional: bool = False) -> LibraryModel:
    return LibraryModel(f"sg2-{data}-{res}", "StyleGAN2", data, res, f"{NGC2}stylegan2-{data}-{res}x{res}.pkl", mb,
                        conditional=conditional)


def _ada(data: str, res: int, mb: int, conditional: bool = False) -> LibraryModel:
    return LibraryModel(f"ada-{data}-{res}", "StyleGAN2-ADA", data, res, f"{ADA}{data}.pkl", mb,
                        conditional=conditional)


CATALOG: tuple[LibraryModel, ...] = (
    _sg3("t", "ffhq", 1024, 280), _sg3("t", "ffhqu", 1024, 280), _sg3("t", "ffhqu", 256, 90),
    _sg3("r", "ffhq", 1024, 320), _sg3("r", "ffhqu", 1024, 320), _sg3("r", "ffhqu", 256, 100),
    _sg3("t", "metfaces", 1024, 280), _sg3("t", "metfacesu", 1024, 280),
    _sg3("r", "metfaces", 1024, 320), _sg3("r", "metfacesu", 1024, 320),
    _sg3("t", "afhqv2", 512, 260), _sg3("r", "afhqv2", 512, 300),
    _sg2("ffhq", 1024, 365), _sg2("ffhq", 512, 350), _sg2("ffhq", 256, 110), _sg2("ffhqu", 1024, 365),
    _sg2("ffhqu", 256, 110), _sg2("metfaces", 1024, 365), _sg2("metfacesu", 1024, 365),
    _sg2("afhqv2", 512, 350), _sg2("afhqcat", 512, 350), _sg2("afhqdog", 512, 350), _sg2("afhqwild", 512, 350),
    _sg2("brecahad", 512, 350), _sg2("cifar10", 32, 80, conditional=True), _sg2("celebahq", 256, 110),
    _sg2("lsundog", 256, 110),
    _ada("ffhq", 1024, 365), _ada("metfaces", 1024, 365), _ada("afhqcat", 512, 350), _ada("afhqdog", 512, 350),
    _ada("afhqwild", 512, 350), _ada("brecahad", 512, 350), _ada("cifar10", 32, 80, conditional=True),
)


def find_model(name: str, catalog: tuple[LibraryModel, ...] | None = None) -> LibraryModel | None:
    name = name.strip().lower()
    return next((m for m in (catalog or CATALOG) if m.name == name), None)


def cache_dir() -> Path:
    explicit = os.environ.get("VRBRIDGE_MODELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vrbridge" / "models"


def cached_path(model: LibraryModel) -> Path:
    return cache_dir() / model.filename


def resolve_network(value: str, allow_download: bool = False, progress: bool = True) -> str:
    """The file a --network value names: an existing path as it is; a library name -> its cached file,
    downloaded first only when ``allow_download``; else LibraryError saying how to get it."""
    if not value or Path(value).expanduser().exists():
        return value
    model = find_model(value)
    if model is None:
        return value  # not a library name: the loader reports the missing file
    path = cached_path(model)
    if path.is_file():
        return str(path)
    if not allow_download:
        raise LibraryError(f"model {model.name} is not downloaded yet ({model.url}, ~{model.approx_mb} MB); "
                           f"run `vrbridge models get {model.name}` or add --allow-download")
    return str(download(model, progress=progress))


# ------------------------------------------------------------------------------------------ download
def _open(url: str, start: int):
    if not url.startswith(("https://", "http://")):
        raise LibraryError(f"refusing to download from {url!r}: only http(s) URLs")
    request = urllib.request.Request(url, headers={"User-Agent": "vrbridge", **(
        {"Range": f"bytes={start}-"} if start else {})})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - scheme checked above


def _total_from(response, start: int) -> tuple[int, bool]:
    """(total size or -1, whether the response continues at ``start``)."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")  # bytes START-END/TOTAL
        try:
            span, total = content_range.split(" ", 1)[1].split("/")
            first = int(span.split("-")[0])
        except (IndexError, ValueError):
            raise LibraryError(f"server sent a malformed Content-Range {content_range!r:.60}") from None
        if first != start:
            raise LibraryError(f"server resumed at byte {first}, not {start}")
        return (int(total) if total.isdigit() else -1), True
    length = response.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else -1), False


def _fetch_once(model: LibraryModel, part: Path, bar) -> int:
    """One HTTP request, appending to ``part`` from its current length. Returns the total size (or -1)."""
    start = part.stat().st_size if part.exists() else 0
    with _open(model.url, start) as response:
        total, resumed = _total_from(response, start)
        if not resumed:
            start = 0  # the server ignored Range (or there was nothing to resume): start over
        if total > MAX_BYTES:
            raise LibraryError(f"{model.url}: server announces {total} bytes, more than the {MAX_BYTES} limit")
        if bar is not None:
            bar.reset(total=total if total > 0 else None)
            bar.update(start)
        with open(part, "ab" if resumed else "wb") as fh:
            done = start
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                done += len(chunk)
                if done > MAX_BYTES or (total > 0 and done > total):
                    raise LibraryError(f"{model.url}: the server sent more bytes than it announced")
                fh.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    if total > 0 and done < total:  # http.client returns a short body quietly when the peer closes early
        raise ConnectionError(f"connection closed at byte {done} of {total}")
    return total


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(model: LibraryModel, progress: bool = True, dest_dir: Path | None = None) -> Path:
    """Fetch ``model`` into the cache (resuming a ``.part`` file); verify; rename into place. Idempotent."""
    from tqdm import tqdm

    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir()
    final = dest_dir / model.filename
    if final.is_file():
        return final
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LibraryError(f"cannot create the model cache {dest_dir}: {exc.strerror or exc}") from None
    part = final.with_name(final.name + ".part")
    bar = tqdm(unit="B", unit_scale=True, desc=model.name, disable=not progress, leave=True, mininterval=0.2)
    total = -1
    try:
        for attempt in range(RESUMES + 1):
            try:
                total = _fetch_once(model, part, bar)
                break
            except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    if exc.code != 416:
                        raise LibraryError(f"{model.url}: HTTP {exc.code} {exc.reason}") from None
                    part.unlink(missing_ok=True)  # Range not satisfiable: the partial file is bad; restart
                have = part.stat().st_size if part.exists() else 0
                if attempt == RESUMES:
                    raise LibraryError(f"download of {model.name} interrupted after {have} bytes ({_reason(exc)}); "
                                       f"run the same command again to resume") from None
                log.info("download of %s cut after %d bytes (%s); resuming", model.name, have, _reason(exc))
    finally:
        bar.close()
    _verify(model, part, total)
    os.replace(part, final)
    return final


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc or type(exc).__name__)[:120]


def _verify(model: LibraryModel, part: Path, total: int) -> None:
    size = part.stat().st_size
    if total > 0 and size != total:
        raise LibraryError(f"download of {model.name} ended at {size} of {total} bytes; run the same command "
                           "again to resume")
    digest = sha256_of(part)
    if model.sha256 and digest != model.sha256.lower():
        part.unlink(missing_ok=True)
        raise LibraryError(f"{model.name}: sha256 {digest[:16]}... does not match the published "
                           f"{model.sha256[:16]}... ({model.hash_source}); the file was deleted")
    with open(part, "rb") as fh:
        head = fh.read(2)
    if head[:1] != b"\x80":
        part.unlink(missing_ok=True)
        raise LibraryError(f"{model.name}: the server sent something that is not a network pickle; deleted")
    log.info("%s: %d bytes, sha256 %s%s", model.name, size, digest,
             " (matches the published hash)" if model.sha256 else " (no published hash to compare with)")
