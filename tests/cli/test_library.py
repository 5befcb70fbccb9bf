"""`float image ...` and `float user ...`: bodies sent, secrets never printed."""

from __future__ import annotations

import io
import json

IMAGE = {"name": "bwa", "uri": "registry.example.com/bwa:1", "private": True, "owner": "alice",
         "createTime": "2024-05-01T10:00:00Z", "updateTime": "2024-05-01T10:00:00Z"}


def test_image_add_reads_the_token_from_stdin_and_never_prints_it(logged_in, run, monkeypatch):
    logged_in.reply("POST", "/v1/images", IMAGE, status=201)
    monkeypatch.setattr("sys.stdin", io.StringIO("registry-secret\n"))

    result = run("image", "add", "bwa", "registry.example.com/bwa:1", "--username", "robot",
                 "--token-stdin", "-F", "table")

    assert result.code == 0, result.err
    assert logged_in.requests[0].body == {"name": "bwa", "uri": "registry.example.com/bwa:1",
                                          "username": "robot", "token": "registry-secret"}
    assert "registry-secret" not in result.out + result.err
    assert "PRIVATE:" in result.out


def test_image_add_with_a_username_but_no_token_sends_nothing(logged_in, run):
    result = run("image", "add", "bwa", "registry.example.com/bwa:1", "--username", "robot")

    assert (result.code, result.err) == (1, "float: a private image needs both username and token\n")
    assert logged_in.requests == []


def test_image_list_follows_pages_and_update_patches(logged_in, run):
    logged_in.reply("GET", "/v1/images", {"items": [IMAGE], "nextToken": "t2"})
    logged_in.reply("GET", "/v1/images", {"items": [{**IMAGE, "name": "gatk"}]})
    logged_in.reply("PATCH", "/v1/images/bwa", {**IMAGE, "private": False})

    listed = run("image", "list", "-F", "json")
    updated = run("image", "update", "bwa", "--public")

    assert [image["name"] for image in json.loads(listed.out)] == ["bwa", "gatk"]
    assert logged_in.requests[-1].method == "PATCH"
    assert logged_in.requests[-1].body == {"public": True}
    assert updated.code == 0, updated.err


def test_user_add_off_a_terminal_needs_the_password_flag(logged_in, run):
    result = run("user", "add", "bob")

    assert result.code == 2
    assert result.err.startswith("float: give --password PASSWORD")
    assert logged_in.requests == []


def test_user_add_and_delete(logged_in, run):
    bob = {"username": "bob", "role": "admin", "createTime": "2024-05-01T10:00:00Z"}
    logged_in.reply("POST", "/v1/users", bob, status=201)
    logged_in.reply("DELETE", "/v1/users/bob", bob)

    added = run("user", "add", "bob", "--password", "bob-password-1", "--role", "admin")
    deleted = run("user", "delete", "bob", "-F", "json")

    assert added.code == 0 and deleted.code == 0
    assert logged_in.requests[0].body == {"username": "bob", "password": "bob-password-1",
                                          "role": "admin"}
    assert "bob-password-1" not in added.out + added.err
    assert json.loads(deleted.out)["username"] == "bob"
