"""iter_sources: files, folders, globs; hidden folders; symlink loops; errors yielded, not raised."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from knowbase.errors import InputFileError, SkippedFileError
from knowbase.knowledge import files as files_mod
from knowbase.knowledge.files import is_glob, iter_sources


def _tree(root: Path) -> Path:
    for rel in ("a.md", "b.txt", "image.png", "sub/c.md", "sub/deeper/d.html", "sub/e.csv",
                ".hidden/secret.md", "sub/.cache/x.md", "sub/.dotfile.md", "zh/页面.md"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {rel}")
    return root


def _split(items: list) -> tuple[list[str], list[InputFileError]]:
    paths = [p for p in items if isinstance(p, Path)]
    errors = [e for e in items if isinstance(e, InputFileError)]
    assert len(paths) + len(errors) == len(items)
    return paths, errors


def _rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_folder_is_walked_recursively_in_order(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    paths, errors = _split(list(iter_sources([root])))
    assert errors == []
    assert _rel(paths, root) == ["a.md", "b.txt", "sub/c.md", "sub/deeper/d.html", "sub/e.csv", "zh/页面.md"]


def test_not_recursive(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    paths, _ = _split(list(iter_sources([root], recursive=False)))
    assert _rel(paths, root) == ["a.md", "b.txt"]


def test_include_and_exclude(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    paths, _ = _split(list(iter_sources([root], include=["*.md"])))
    assert _rel(paths, root) == ["a.md", "sub/c.md", "zh/页面.md"]
    paths, _ = _split(list(iter_sources([root], exclude=["sub/*", "b.txt"])))
    assert _rel(paths, root) == ["a.md", "zh/页面.md"]
    paths, _ = _split(list(iter_sources([root], include=["sub/**"], exclude=["*.csv"])))
    assert _rel(paths, root) == ["sub/c.md", "sub/deeper/d.html"]


def test_glob_patterns(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    paths, errors = _split(list(iter_sources([f"{root}/**/*.md"])))
    assert errors == []
    assert _rel(paths, root) == ["a.md", "sub/c.md", "zh/页面.md"]  # hidden names not matched
    paths, _ = _split(list(iter_sources([f"{root}/sub/*"])))
    assert _rel(paths, root) == ["sub/c.md", "sub/deeper/d.html", "sub/e.csv"]  # matched folder walked
    paths, errors = _split(list(iter_sources([f"{root}/**/*.rtf"])))
    assert paths == [] and [e.reason for e in errors] == ["no supported files match this pattern"]
    assert is_glob("docs/**/*.md") and is_glob("a?.md") and not is_glob("docs/a.md")


def test_explicit_file_any_extension_and_missing_path(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    items = list(iter_sources([root / "image.png", root / "missing.md", root / "a.md"]))
    paths, errors = _split(items)
    assert _rel(paths, root) == ["image.png", "a.md"]  # the loader will refuse the .png
    assert [(e.path, e.reason) for e in errors] == [(str(root / "missing.md"), "not found")]
    assert isinstance(items[1], InputFileError)  # order kept: errors come where they occur


def test_same_file_twice_is_yielded_once(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    (root / "link-to-a.md").symlink_to(root / "a.md")
    paths, _ = _split(list(iter_sources([root, root / "a.md", f"{root}/*.md"])))
    assert _rel(paths, root).count("a.md") + _rel(paths, root).count("link-to-a.md") == 1


def test_symlink_loop_is_reported_and_the_rest_continues(tmp_path: Path) -> None:
    root = _tree(tmp_path / "docs")
    (root / "sub" / "back-to-root").symlink_to(root)          # directory cycle
    (root / "sub" / "deeper" / "up").symlink_to(root / "sub")  # another
    (root / "self.md").symlink_to(root / "self.md")             # ELOOP on stat
    (root / "dangling.md").symlink_to(root / "nowhere.md")      # broken link
    items = list(iter_sources([root]))
    paths, errors = _split(items)
    assert _rel(paths, root) == ["a.md", "b.txt", "sub/c.md", "sub/deeper/d.html", "sub/e.csv", "zh/页面.md"]
    reasons = {Path(e.path).name: e.reason for e in errors}
    assert reasons == {
        "back-to-root": "symlink loop (links back to a parent folder)",
        "up": "symlink loop (links back to a parent folder)",
        "self.md": "symlink loop",
        "dangling.md": "broken symlink",
    }


def test_symlinked_folder_elsewhere_is_skipped_unless_follow_links(tmp_path: Path) -> None:
    other = _tree(tmp_path / "other")
    root = tmp_path / "docs"
    root.mkdir()
    (root / "linked").symlink_to(other / "sub")
    paths, errors = _split(list(iter_sources([root])))
    assert paths == []
    assert [(type(e), Path(e.path).name) for e in errors] == [(SkippedFileError, "linked")]
    assert errors[0].reason.startswith("symlink leaves the folder being ingested (to ")
    assert str((other / "sub").resolve()) in errors[0].reason
    paths, errors = _split(list(iter_sources([root], follow_links=True)))
    assert errors == []
    assert _rel(paths, root) == ["linked/c.md", "linked/deeper/d.html", "linked/e.csv"]


def test_symlinks_leaving_the_folder_are_not_followed(tmp_path: Path) -> None:
    """Links to a system file and to a credentials file named like a document are skipped
    with the reason; a link staying inside the folder is followed; a glob's links are
    judged against its fixed part; an explicitly named link is read."""
    secret = tmp_path / "home" / ".aws" / "credentials"
    secret.parent.mkdir(parents=True)
    secret.write_text("[default]\naws_secret_access_key = abc\n")
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# A\n")
    (root / "sub" / "x.txt").symlink_to(secret)
    (root / "passwd.txt").symlink_to("/etc/passwd")
    (root / "inside.md").symlink_to(root / "a.md")
    (root / "sub" / "up.md").symlink_to("../a.md")  # relative, stays inside
    items = list(iter_sources([root]))
    skipped = {Path(e.path).name: e.reason for e in items if isinstance(e, SkippedFileError)}
    assert set(skipped) == {"x.txt", "passwd.txt"}
    assert str(secret.resolve()) in skipped["x.txt"] and "/etc/passwd" in skipped["passwd.txt"]
    assert all(not isinstance(e, InputFileError) or isinstance(e, SkippedFileError) for e in items)
    assert [p.name for p in items if isinstance(p, Path)] == ["a.md"]  # the two inside links are the same file
    glob_items = list(iter_sources([str(root / "**" / "*.txt")]))
    assert {Path(e.path).name for e in glob_items if isinstance(e, SkippedFileError)} == {"x.txt", "passwd.txt"}
    assert not [p for p in glob_items if isinstance(p, Path)]
    followed = [p for p in iter_sources([root], follow_links=True) if isinstance(p, Path)]
    assert sorted(p.name for p in followed) == ["a.md", "passwd.txt", "x.txt"]
    assert [p.name for p in iter_sources([root / "sub" / "x.txt"])] == ["x.txt"]  # named explicitly


def test_unreadable_folder_is_yielded_as_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root ignores folder modes, so ``os.scandir`` is made to fail as it does for an
    ordinary user on a ``chmod 000`` folder."""
    root = _tree(tmp_path / "docs")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == root / "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(files_mod.os, "scandir", scandir)
    paths, errors = _split(list(iter_sources([root])))
    assert _rel(paths, root) == ["a.md", "b.txt", "zh/页面.md"]
    assert [(e.path, e.reason) for e in errors] == [(str(root / "sub"), "permission denied")]


def test_special_file_is_not_regular(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    _, errors = _split(list(iter_sources([fifo])))
    assert [e.reason for e in errors] == ["not a regular file"]


def test_k8s_concepts_folder(shared_data: Path) -> None:
    root = shared_data / "k8s-docs/content/en/docs/concepts"
    paths, errors = _split(list(iter_sources([root])))
    assert errors == [] and len(paths) == 176
    assert all(p.suffix == ".md" for p in paths)
