"""A static web leaderboard (``fmbench leaderboard site --out DIR``): plain HTML files, no server code.

The site works from ``file://`` and from any static server (``python -m http.server``): every link is
relative and the only script is a small inline one that sorts tables by a clicked column. It holds

- ``index.html``: the studies (their ``docs/<study>/`` pages) and every registered task, with its
  number of entries, best entry and number of invalid files;
- ``tasks/<task>.html``: the task's ranked table (mean ± std of the primary metric, seeds, #params,
  device, date, verified, code link, baseline marks; a details cell with the task version, fmbench
  version and commit, the model and the data hash of every seed), the files that are not valid entries
  (shown with the reason, never failing the build) and the study's plots;
- ``studies/``: the Markdown pages of ``docs/`` (each study's ``docs/<study>/``, this platform's page, ...)
  rendered to HTML (``README.md`` -> ``index.html``) beside copies of the other files (plots, JSON). A link
  to a file outside the site (the repository's code, say) is kept as text with the path as its title.

The site is built in a temporary folder beside ``DIR`` and moved into place when complete; an existing
``DIR`` is replaced only if an earlier build made it (it holds ``.fmbench-site``).

Example:
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "site"
    >>> pages = build_site(out, tasks=["fmbench/ComposeDirect-v0"])
    >>> sorted(p.relative_to(out).as_posix() for p in pages if p.suffix == ".html")[:2]
    ['index.html', 'studies/adding-a-study.html']
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import markdown

from fmbench.errors import InputError
from fmbench.leaderboard import Invalid, default_dir, rank, scan, superseded_note
from fmbench.registry import list_tasks, task_spec

MARKER = ".fmbench-site"
_LINK = re.compile(r'\b(href|src)="([^"]*)"')

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;line-height:1.45;color:#222}
nav{margin-bottom:1em}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}th button{all:unset;cursor:pointer;font-weight:bold}th[aria-sort=ascending]
button::after{content:" ▲"}th[aria-sort=descending] button::after{content:" ▼"}code,pre{background:#f4f4f4}
pre{padding:.6em;overflow-x:auto}img{max-width:100%}.invalid{color:#a00}.baseline{color:#555;font-size:.9em}
details dl{display:grid;grid-template-columns:max-content auto;gap:0 1em;margin:.3em 0}dt{font-weight:bold}
dd{margin:0;font-family:monospace;word-break:break-all}.plots img{max-width:45em;display:block;margin:1em 0}
"""

SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    th.querySelector("button").addEventListener("click", function () {
      var body = table.tBodies[0];
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) { var c = row.cells[col]; return c.getAttribute("data-sort") || c.textContent; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        var cmp = (!isNaN(nx) && !isNaN(ny) && isFinite(x) && isFinite(y)) ? nx - ny : x.localeCompare(y);
        return dir * cmp;
      });
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def page_name(task_id: str) -> str:
    """The file name of a task's page.

    Example:
        >>> page_name("fmbench/ComposeDirect-v0")
        'fmbench__ComposeDirect-v0.html'
    """
    return task_id.replace("/", "__") + ".html"


def _page(title: str, body: str, up: str) -> str:
    """A complete HTML page; ``up`` is the relative path to the site's root (``""`` or ``"../"``)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{_e(title)}</title><link rel="icon" href="data:,"><style>{STYLE}</style></head><body>'
        f'<nav><a href="{up}index.html">fmbench leaderboards</a></nav>\n{body}\n<script>{SORT_JS}</script>'
        "</body></html>\n"
    )


def _table(head: list[tuple[str, str]], rows: list[list[tuple[str, str]]], cls: str = "sortable") -> str:
    """A sortable table; ``head`` and each row's cells are ``(html, sort key)`` pairs."""
    th = "".join(f'<th scope="col" title="{_e(tip)}"><button type="button">{h}</button></th>' for h, tip in head)
    body = "".join(
        "<tr>" + "".join(f'<td data-sort="{_e(key)}">{cell}</td>' for cell, key in row) + "</tr>\n" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>\n{body}</tbody></table>'


def study_folder(task_id: str) -> str:
    """The ``docs/`` folder of a task's study: its spec file's name (``tasks/compositional.toml`` ->
    ``compositional``).

    Example:
        >>> study_folder("fmbench/ComposeDirect-v0")
        'compositional'
    """
    return Path(task_spec(task_id).spec_file).stem


def _details(record: dict[str, Any]) -> str:
    items = [
        ("task version", record["task"]["version"]),
        ("fmbench", f"{record['fmbench_version']} (commit {record.get('git_commit') or 'unknown'})"),
        ("model", record["model"]["spec"]),
        ("model key", f"{record['model']['key']['sha256']} ({record['model']['key']['of']})"),
        *((f"data hash, seed {s}", h) for s, h in record["task"]["data_hash"].items()),
        *(
            (name, f"{m['mean']:.4f} ± {m['std']:.4f}")
            for name, m in record["metrics"].items()
            if name != record["primary_metric"]
        ),
        ("evaluated in", f"{record['timings']['total_seconds']:.1f} s, batch size {record['batch_size']}"),
    ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f"<details><summary>details</summary><dl>{dl}</dl></details>"


def _code_link(url: str | None) -> str:
    if not url:
        return "—"
    if re.match(r"^https?://", url):
        return f'<a href="{_e(url)}">code</a>'
    return _e(url)  # not a web address: shown, never a link


def _params(n: int | None) -> tuple[str, str]:
    if n is None:
        return "?", "-1"
    return (f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,}"), str(n)


def task_page(task_id: str, records: list[dict[str, Any]], invalid: list[Invalid], plots: list[str]) -> str:
    """The HTML of a task's page (``plots``: image paths relative to the page)."""
    spec = task_spec(task_id)
    rows = rank(task_id, records)
    by_name = {r["submission"]["name"]: r for r in records}
    arrow = "↑" if spec.metrics[spec.primary_metric].higher_is_better else "↓"
    head = [
        ("rank", "rank by the primary metric's mean, then lower std, then earlier submission"),
        ("name", "submission name; (baseline): a model the task ships (same key)"),
        (f"{_e(spec.primary_metric)} {arrow}", "mean ± sample std over seeds"),
        ("seeds", "number of seeds"),
        ("#params", "parameters"),
        ("device", "device of the evaluation"),
        ("date", "submitted"),
        ("verified", "fmbench re-ran the model on the seed shown and every metric matched"),
        ("code", "code link given at submission"),
        ("details", "versions, model key, data hashes, other metrics"),
    ]
    body = []
    for r in rows:
        record = by_name[r["name"]]
        params, params_key = _params(r["n_params"])
        verified = f"yes (seed {r['verified']['seed']})" if r["verified"] else "no"
        mark = ' <span class="baseline">(baseline)</span>' if r["baseline"] else ""
        body.append(
            [
                (str(r["rank"]), str(r["rank"])),
                (_e(r["name"]) + mark, r["name"]),
                (f"{r['mean']:.4f} ± {r['std']:.4f}", repr(r["mean"])),
                (str(r["seeds"]), str(r["seeds"])),
                (params, params_key),
                (_e(r["device"]), r["device"]),
                (_e(r["date"]), r["date"]),
                (verified, verified),
                (_code_link(r["code_url"]), r["code_url"] or ""),
                (_details(record), ""),
            ]
        )
    parts = [
        f"<h1>{_e(task_id)}</h1>",
        *([f"<p><strong>{_e(superseded_note(task_id))}</strong></p>"] if superseded_note(task_id) else []),
        f"<p>{_e(spec.summary)}</p>",
        f'<p>Study: <a href="../studies/{_e(study_folder(task_id))}/index.html">arXiv:{_e(spec.study)} — '
        f"{_e(spec.title)}</a>. Primary metric: <code>{_e(spec.primary_metric)}</code>; ranked entries need at "
        f"least {spec.min_seeds} seeds. Task version {spec.version}. Click a column's name to sort by it.</p>",
        _table(head, body) if rows else "<p>No valid entries yet.</p>",
    ]
    if invalid:
        items = "".join(f"<li><code>{_e(b.path.name)}</code>: {_e(b.reason)}</li>" for b in invalid)
        parts.append(f'<h2 class="invalid">Invalid files (not ranked)</h2><ul class="invalid">{items}</ul>')
    if plots:
        images = "".join(f'<img src="{_e(p)}" alt="{_e(Path(p).name)}">' for p in plots)
        parts.append(f'<h2>The study\'s plots</h2><div class="plots">{images}</div>')
    return _page(task_id, "\n".join(parts), "../")


def html_name(path: str) -> str:
    """Where a docs file lands on the site: ``.md`` pages become ``.html`` (``README.md``: ``index.html``).

    Example:
        >>> html_name("graphcl/README.md"), html_name("theory.md"), html_name("phase.png")
        ('graphcl/index.html', 'theory.html', 'phase.png')
    """
    if not path.endswith(".md"):
        return path
    head, _, name = path.rpartition("/")
    stem = "index" if name == "README.md" else name.removesuffix(".md")
    return f"{head}/{stem}.html" if head else f"{stem}.html"


def _rewrite_links(text: str, rel: str, site_files: set[str]) -> str:
    """Point links to Markdown pages at their HTML; keep links to files the site holds and web links; turn a
    link to anything else (the repository's code) into plain text titled with its path.

    ``rel`` is the page's path under ``docs/``; ``site_files`` the docs files the site holds (``html_name``).
    """

    def fix(m: re.Match[str]) -> str:
        attr, target = m.group(1), html.unescape(m.group(2))
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#") or not target:
            return m.group(0)
        path, _, fragment = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(rel), path))
        if html_name(resolved) in site_files and not resolved.startswith(".."):
            return f'{attr}="{_e(html_name(path) + ("#" + fragment if fragment else ""))}"'
        return f'title="{_e(target)} (in the fmbench repository, not on this site)"' if attr == "href" else m.group(0)

    return _LINK.sub(fix, text)


def docs_pages(docs: Path, out: Path, studies: dict[str, list[str]]) -> list[Path]:
    """Render the Markdown pages of ``docs/`` into ``out`` (the same layout, pages as HTML) beside copies of its
    other files (plots, JSON); a study's index also lists its tasks' pages."""
    files = sorted(p for p in docs.rglob("*") if p.is_file() and not p.name.startswith(".")) if docs.is_dir() else []
    files = [p for p in files if not p.is_symlink()]
    site_files = {html_name(p.relative_to(docs).as_posix()) for p in files}
    written = []
    for p in files:
        rel = p.relative_to(docs).as_posix()
        dest = out / html_name(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not rel.endswith(".md"):
            shutil.copyfile(p, dest)
            written.append(dest)
            continue
        up = "../" * rel.count("/") + "../"  # from out/<rel> to the site's root (out's parent)
        text = markdown.markdown(p.read_text(encoding="utf-8"), extensions=["tables", "fenced_code", "toc"])
        text = _rewrite_links(text, rel, site_files)
        study = rel.partition("/")[0]
        if rel.endswith("/README.md") and studies.get(study):
            links = "".join(f'<li><a href="{up}tasks/{_e(page_name(t))}">{_e(t)}</a></li>' for t in studies[study])
            text += f"<h2>Leaderboards</h2><ul>{links}</ul>"
        dest.write_text(_page(rel.removesuffix(".md"), text, up), encoding="utf-8")
        written.append(dest)
    for study, tids in studies.items():  # no docs folder (an installed wheel, a plug-in's study): its tasks
        page = out / study / "index.html"
        if not page.exists():
            links = "".join(f'<li><a href="../../tasks/{_e(page_name(t))}">{_e(t)}</a></li>' for t in tids)
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(_page(study, f"<h1>{_e(study)}</h1><ul>{links}</ul>", "../../"), encoding="utf-8")
            written.append(page)
    return written


def _index(studies: dict[str, list[str]], summary: list[dict[str, Any]], docs_pages: list[str]) -> str:
    study_rows = []
    for name, tids in sorted(studies.items()):
        specs = {task_spec(t).study: task_spec(t).title for t in tids}
        cites = "; ".join(f"arXiv:{_e(a)} {_e(t)}" for a, t in sorted(specs.items()))
        study_rows.append(
            [(f'<a href="studies/{_e(name)}/index.html">{_e(name)}</a>', name), (cites, cites), (str(len(tids)), "")]
        )
    task_rows = [
        [
            (f'<a href="tasks/{_e(page_name(s["id"]))}">{_e(s["id"])}</a>', s["id"]),
            (_e(s["study"]), s["study"]),
            (str(s["entries"]), str(s["entries"])),
            (_e(s["best"]), s["best"]),
            (s["score"], s["score_key"]),
            (f'<span class="invalid">{s["invalid"]}</span>' if s["invalid"] else "0", str(s["invalid"])),
        ]
        for s in summary
    ]
    other = "".join(
        f'<li><a href="studies/{_e(p)}">{_e(p.removesuffix(".html").removesuffix("/index"))}</a></li>'
        for p in docs_pages
    )
    return _page(
        "fmbench leaderboards",
        "<h1>fmbench leaderboards</h1><p>Built by <code>fmbench leaderboard site</code> from the leaderboard "
        "files; submit with <code>fmbench submit</code>. Click a column's name to sort by it.</p><h2>Studies</h2>"
        + _table([("study", "docs/<study>/"), ("cites", "papers"), ("tasks", "registered tasks")], study_rows)
        + "<h2>Tasks</h2>"
        + _table(
            [
                ("task", "task id"),
                ("study", "docs folder"),
                ("entries", "valid entries"),
                ("best", "top-ranked entry"),
                ("best score", "its primary metric, mean ± std"),
                ("invalid", "files that are not valid entries"),
            ],
            task_rows,
        )
        + (f"<h2>Other pages</h2><ul>{other}</ul>" if other else ""),
        "",
    )


def build_site(
    out: str | Path, root: Path | None = None, docs: Path | None = None, tasks: list[str] | None = None
) -> list[Path]:
    """Write the site into ``out`` (see the module docstring); return the files written.

    Args:
        out: the site's folder (created; replaced only when an earlier build made it).
        root: the leaderboards folder (default: :func:`fmbench.leaderboard.default_dir`).
        docs: the study pages' folder (default: the checkout's ``docs/``; none in an installed wheel).
        tasks: the tasks to show (default: every registered task).
    """
    out = Path(out)
    root = root or default_dir()
    if docs is None:
        docs = Path(__file__).resolve().parent.parent / "docs"
    if out.exists() and (not out.is_dir() or out.is_symlink() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise InputError(f"{out} exists and is not a site fmbench built; give an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        written = _build(build, root, docs, tasks if tasks is not None else list_tasks())
        (build / MARKER).write_text("built by fmbench leaderboard site\n")
        build.chmod(0o777 & ~_umask())
        old = out.with_name(f".{out.name}.old") if out.exists() else None
        if old:
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        build.rename(out)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return [out / p.relative_to(build) for p in written]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _build(out: Path, root: Path, docs: Path, tasks: list[str]) -> list[Path]:
    studies: dict[str, list[str]] = {}
    summary, written = [], []
    (out / "tasks").mkdir()
    for tid in tasks:
        study = study_folder(tid)
        studies.setdefault(study, []).append(tid)
        records, invalid = scan(tid, root)
        rows = rank(tid, records)
        folder = docs / study
        plots = sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []
        page = out / "tasks" / page_name(tid)
        page.write_text(task_page(tid, records, invalid, [f"../studies/{study}/{p}" for p in plots]), encoding="utf-8")
        written.append(page)
        best = rows[0] if rows else None
        summary.append(
            {
                "id": tid,
                "study": study,
                "entries": len(rows),
                "best": best["name"] if best else "—",
                "score": f"{best['mean']:.4f} ± {best['std']:.4f}" if best else "—",
                "score_key": repr(best["mean"]) if best else "",
                "invalid": len(invalid),
            }
        )
    written += docs_pages(docs, out / "studies", studies)
    pages = sorted(
        html_name(p.relative_to(docs).as_posix())
        for p in (docs.rglob("*.md") if docs.is_dir() else [])
        if p.relative_to(docs).parts[0] not in studies and (p.parent == docs or p.name == "README.md")
    )
    index = out / "index.html"
    index.write_text(_index(studies, summary, pages), encoding="utf-8")
    return [index, *written]
