"""The ZooKeeper board's fleet: ``fleet/<name>`` holds a member's record (persistent, so a member that
went away is still listed, as gone) and ``fleet/<name>/alive`` is an ephemeral node of its session,
so ZooKeeper itself says when the process is gone: its session ended."""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from flowkit.jobboard.fleet import FORGET_AFTER, Member

if TYPE_CHECKING:
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard


def _path(board: ZooKeeperJobBoard, name: str) -> str:
    return f"{board.path}/fleet/{quote(name, safe='')}"


def announce(board: ZooKeeperJobBoard, member: Member) -> None:
    from kazoo.exceptions import NodeExistsError, NoNodeError

    client, acl = board._client, board._session.acl()
    path, data = _path(board, member.name), json.dumps(member.to_record()).encode()
    with board._errors(f"announce {member.name!r}"):
        try:
            client.set(path, data)
        except NoNodeError:
            client.create(path, data, acl=acl, makepath=True)
        alive = f"{path}/alive"
        if member.stopped:
            with contextlib.suppress(NoNodeError):
                client.delete(alive)
        elif client.exists(alive) is None:
            # NodeExistsError: an earlier session's node, about to expire; the next beat makes ours
            with contextlib.suppress(NodeExistsError):
                client.create(alive, b"", acl=acl, ephemeral=True)


def members(board: ZooKeeperJobBoard) -> list[Member]:
    from kazoo.exceptions import NoNodeError

    client, root, out = board._client, f"{board.path}/fleet", []
    with board._errors("list the fleet"):
        try:
            children = client.get_children(root)
        except NoNodeError:
            return []
        for child in sorted(children):
            path = f"{root}/{child}"
            try:
                data, _ = client.get(path)
                member = Member.from_record(
                    json.loads(data.decode("utf-8")), client.exists(f"{path}/alive") is not None
                )
            except NoNodeError:
                continue
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                board._warn_bad(path, "not a fleet member record")
                continue
            if member.status() != "alive" and member.heartbeat < time.time() - FORGET_AFTER:
                with contextlib.suppress(NoNodeError):
                    client.delete(path, recursive=True)
                continue
            out.append(member)
    return out


__all__ = ["announce", "members"]
