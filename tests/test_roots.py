"""The app's data roots: folder sources outside the allow-list are refused, with the roots named."""

import os

import pytest

from explorer.server.roots import (
    DATA_ROOTS_ENV,
    SHARED_DATA,
    RootsError,
    check_app_source,
    check_folder_source,
    data_roots,
)


@pytest.fixture
def root(tmp_path):
    """An allowed root with one small class-folder data set, and a folder outside it."""
    allowed = tmp_path / "data"
    for name in ("cat", "dog"):
        (allowed / "pets" / name).mkdir(parents=True)
        (allowed / "pets" / name / "1.jpg").write_bytes(b"not decoded here")
    (tmp_path / "secret" / "x").mkdir(parents=True)
    (tmp_path / "secret" / "x" / "1.jpg").write_bytes(b"private")
    return allowed


def test_a_folder_inside_a_root_is_accepted_and_resolved(root, monkeypatch):
    assert check_folder_source(f"folder:{root / 'pets'}", [root]) == (root / "pets").resolve()
    assert check_folder_source(f"folder: {root} ", [root]) == root.resolve()  # the root itself, spaces trimmed
    monkeypatch.chdir(root)
    assert check_folder_source("folder:pets", [root]) == (root / "pets").resolve()  # relative to the server's folder


def test_system_folders_are_refused_with_the_roots_named(root):
    for source in ("folder:/etc", "folder:/", f"folder:{root.parent / 'secret'}", "folder:/etc/passwd"):
        with pytest.raises(RootsError, match="outside the allowed data folders") as refused:
            check_folder_source(source, [root])
        assert str(root.resolve()) in str(refused.value) and DATA_ROOTS_ENV in str(refused.value)


def test_a_missing_folder_outside_the_roots_is_not_told_apart_from_an_existing_one(root):
    messages = []
    for source in ("folder:/etc", "folder:/no/such/folder"):
        with pytest.raises(RootsError) as refused:
            check_folder_source(source, [root])
        messages.append(str(refused.value).replace(source.removeprefix("folder:"), "PATH"))
    assert messages[0] == messages[1]


def test_climbs_with_dot_dot_are_refused_even_back_into_the_root(root, monkeypatch):
    for source in (f"folder:{root}/../secret", f"folder:{root}/pets/../pets", "folder:../data/pets"):
        with pytest.raises(RootsError, match=r"climbs with '\.\.'"):
            check_folder_source(source, [root])
    monkeypatch.chdir(root / "pets")
    with pytest.raises(RootsError, match="climbs"):
        check_folder_source("folder:../../secret", [root])


def test_a_link_out_of_a_root_is_refused(root):
    outside = root.parent / "secret"
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RootsError, match="outside the allowed data folders"):
        check_folder_source(f"folder:{root / 'escape'}", [root])


def test_a_folder_holding_links_out_of_the_root_is_refused(root):
    outside = root.parent / "secret"
    (root / "pets" / "stolen").symlink_to(outside / "x", target_is_directory=True)  # a linked class folder
    with pytest.raises(RootsError, match=r"holds a link \(stolen\)"):
        check_folder_source(f"folder:{root / 'pets'}", [root])
    (root / "pets" / "stolen").unlink()
    (root / "pets" / "cat" / "2.jpg").symlink_to(outside / "x" / "1.jpg")  # a linked image
    with pytest.raises(RootsError, match="holds a link"):
        check_folder_source(f"folder:{root / 'pets'}", [root])


def test_links_that_stay_inside_the_roots_are_fine(root, tmp_path):
    other = tmp_path / "uploads"
    (other / "bird").mkdir(parents=True)
    (root / "pets" / "bird").symlink_to(other / "bird", target_is_directory=True)
    (root / "pets" / "cat" / "copy.jpg").symlink_to(root / "pets" / "dog" / "1.jpg")
    assert check_folder_source(f"folder:{root / 'pets'}", [root, other]) == (root / "pets").resolve()
    with pytest.raises(RootsError):  # the same link with the upload folder not allowed
        check_folder_source(f"folder:{root / 'pets'}", [root])


def test_empty_non_folder_and_missing_sources(root):
    with pytest.raises(RootsError, match="needs a path"):
        check_folder_source("folder:  ", [root])
    with pytest.raises(RootsError, match="not a folder source"):
        check_folder_source("synthetic", [root])
    with pytest.raises(RootsError, match="does not exist"):
        check_folder_source(f"folder:{root / 'nothing'}", [root])
    with pytest.raises(RootsError, match="does not exist"):
        check_folder_source(f"folder:{root / 'pets' / 'cat' / '1.jpg'}", [root])
    with pytest.raises(RootsError, match="allows no data folders"):
        check_folder_source("folder:/etc", [])


def test_roots_come_from_the_environment_then_the_session_uploads(root, tmp_path):
    uploads = tmp_path / "uploads-1"
    uploads.mkdir()
    environ = {DATA_ROOTS_ENV: os.pathsep.join([str(root), str(tmp_path / "missing"), "", str(root)])}
    assert data_roots(environ, uploads=[uploads]) == (root.resolve(), uploads.resolve())
    assert data_roots({DATA_ROOTS_ENV: ""}, uploads=[uploads]) == (uploads.resolve(),)  # set but empty: uploads only
    default = data_roots({})
    assert default == ((SHARED_DATA.resolve(),) if SHARED_DATA.is_dir() else ())


def test_every_spelling_of_a_folder_source_the_loader_accepts_is_checked(root):
    for source in ("FOLDER:/etc", " folder:/etc", "Folder :/etc"):
        with pytest.raises(RootsError, match="outside"):
            check_app_source(source, [root])
    assert check_app_source(f"folder:{root / 'pets'}", [root]) == f"folder:{(root / 'pets').resolve()}"
    for source in ("synthetic", "synthetic:2000", "cifar10", "nonsense"):  # not folders: the loader judges them
        assert check_app_source(source, [root]) == source


def test_a_nul_byte_has_its_own_message_not_a_climb(root):
    nul = r"holds a NUL character \(\\x00\), which no file or folder name can contain"
    with pytest.raises(RootsError, match=nul) as refused:
        check_folder_source(f"folder:{root}/pets\x00/../../etc", [root])
    assert "climbs" not in str(refused.value) and str(root.resolve()) in str(refused.value)  # the roots, as spelled


@pytest.mark.parametrize("part", ["a" * 256, "é" * 128])  # 256 bytes either way (é is two bytes in UTF-8)
def test_a_path_part_over_255_bytes_is_refused_without_asking_the_disk(root, part, monkeypatch):
    monkeypatch.setattr(os, "lstat", lambda *a, **k: pytest.fail("the disk was asked"))  # what resolve() calls
    with pytest.raises(RootsError, match=r"has a part of 256 bytes .*a file or folder name is at most 255 bytes"):
        check_folder_source(f"folder:{root}/{part}", [root])
    monkeypatch.undo()
    longest = root / ("b" * 255)  # exactly at the limit: an ordinary folder
    longest.mkdir()
    assert check_folder_source(f"folder:{longest}", [root]) == longest.resolve()


def test_a_path_over_4096_bytes_and_unencodable_text_are_refused(root):
    with pytest.raises(RootsError, match=r"is 6,[\d,]+ bytes long; a path is at most 4,096"):
        check_folder_source(f"folder:{root}" + "/abc" * 1500, [root])
    with pytest.raises(RootsError, match="characters that no file or folder name on this server can contain"):
        check_folder_source(f"folder:{root}/\ud800", [root])


def test_an_unreadable_folder_inside_a_root_is_a_message_not_an_oserror(root, monkeypatch):
    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", unreadable)
    with pytest.raises(RootsError, match=r"'.*pets' cannot be read \(Permission denied\)"):
        check_folder_source(f"folder:{root / 'pets'}", [root])
