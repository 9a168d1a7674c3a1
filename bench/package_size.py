"""Package size: the Lambda deployment archive, zipped and unzipped, and what fills it.

The archive is built by ``components.packaging.build_lambda_archive`` — the same function
the Pulumi program deploys with — so the number is the real upload, not an estimate.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.report import Section, fmt_bytes

# Lambda's documented limits for a .zip deployment package.
LAMBDA_ZIPPED_LIMIT = 50 * 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveSize:
    path: Path
    zipped: int
    unzipped: int
    files: int
    # Top-level entry (package, module or dist-info) → (unzipped, zipped) bytes, largest first.
    by_top_level: dict[str, tuple[int, int]]


def measure_archive(path: Path) -> ArchiveSize:
    """Sizes of an existing zip archive."""
    totals: dict[str, list[int]] = {}
    files = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            files += 1
            top = info.filename.split("/", 1)[0]
            if top.endswith(".dist-info"):
                top = "*.dist-info (metadata)"
            entry = totals.setdefault(top, [0, 0])
            entry[0] += info.file_size
            entry[1] += info.compress_size
    ranked = sorted(totals.items(), key=lambda item: item[1][0], reverse=True)
    return ArchiveSize(
        path=path,
        zipped=path.stat().st_size,
        unzipped=sum(unzipped for unzipped, _ in totals.values()),
        files=files,
        by_top_level={name: (sizes[0], sizes[1]) for name, sizes in ranked},
    )


def build_and_measure() -> tuple[ArchiveSize, bool]:
    """Build (or reuse) the deployment archive; its sizes and whether the cache was hit."""
    from components.packaging import build_lambda_archive

    archive = build_lambda_archive()
    return measure_archive(archive.path), archive.cache_hit


def package_section(top: int = 3) -> Section:
    """The table section: zipped and unzipped size and the ``top`` largest contributors."""
    section = Section("Package size (the one Lambda archive every function shares)")
    try:
        size, cache_hit = build_and_measure()
    except Exception as error:  # a packaging failure is reported, not hidden
        section.add("deployment archive", "failed", "", "ERROR")
        section.notes.append(f"build_lambda_archive failed: {type(error).__name__}: {error}")
        return section
    section.add(
        "zipped",
        fmt_bytes(size.zipped),
        f"Lambda limit {LAMBDA_ZIPPED_LIMIT // 2**20} MiB",
        "OK" if size.zipped <= LAMBDA_ZIPPED_LIMIT else "OVER",
    )
    section.add(
        f"unzipped ({size.files:,} files)",
        fmt_bytes(size.unzipped),
        f"Lambda limit {LAMBDA_UNZIPPED_LIMIT // 2**20} MiB",
        "OK" if size.unzipped <= LAMBDA_UNZIPPED_LIMIT else "OVER",
    )
    for name, (unzipped, zipped) in list(size.by_top_level.items())[:top]:
        share = unzipped / size.unzipped if size.unzipped else 0.0
        section.add(
            f"… of which `{name}`",
            fmt_bytes(unzipped),
            f"{share:.0%} of unzipped; {zipped / 2**20:.2f} MiB zipped",
        )
    if "runtime" in size.by_top_level and "runtime" not in list(size.by_top_level)[:top]:
        unzipped, zipped = size.by_top_level["runtime"]
        section.add(
            "… of which `runtime` (the service's own code)",
            fmt_bytes(unzipped),
            f"{unzipped / size.unzipped:.1%} of unzipped; {zipped / 2**20:.2f} MiB zipped",
        )
    section.notes.append(
        f"archive {size.path.name} ({'reused from cache' if cache_hit else 'built'})"
    )
    return section
