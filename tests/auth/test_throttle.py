"""Login throttling (findings 1 and 2): counted before the hash, keyed on the real client behind Envoy,
bounded usernames, pruned keys; and ChangePassword's current-password check throttled like Login."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import grpc
import pytest
from auth_helpers import AuthService, failure, start_auth
from grpc import aio
from odin_auth.throttle import LoginThrottle

from odin.auth.v1 import auth_pb2 as pb
from odin.auth.v1 import auth_pb2_grpc as pb_grpc
from odin.runtime.client_address import client_address
from odin.runtime.errors import ResourceExhausted

FAILED = {"code": grpc.StatusCode.UNAUTHENTICATED, "reason": "LOGIN_FAILED"}
THROTTLED = {"code": grpc.StatusCode.RESOURCE_EXHAUSTED, "reason": "LOGIN_THROTTLED"}


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthService]:
    state = tmp_path_factory.mktemp("throttle")
    service = start_auth(state, f"sqlite:///{state / 'auth.db'}", ODIN_AUTH_TRUSTED_PROXY_HOPS="1")
    yield service
    service.process.terminate()


def login(auth: AuthService, username: str, password: str, forwarded: str | None = None) -> dict[str, object]:
    metadata = (("x-forwarded-for", forwarded),) if forwarded else ()
    try:
        auth.stub().Login(pb.LoginRequest(username=username, password=password), metadata=metadata, timeout=30)
    except grpc.RpcError as error:
        found = failure(error)
        return {k: found[k] for k in ("code", "reason") if k in found}
    return {"code": grpc.StatusCode.OK}


async def test_200_concurrent_wrong_passwords_evaluate_at_most_the_limit(auth: AuthService) -> None:
    username, _, _ = auth.new_user()

    async def attempt(stub: pb_grpc.AuthServiceStub) -> dict[str, object]:
        try:
            await stub.Login(pb.LoginRequest(username=username, password=secrets.token_hex(8)), timeout=60)
        except aio.AioRpcError as error:
            return {"code": error.code(), "reason": _reason(error)}
        return {"code": grpc.StatusCode.OK}

    async with aio.insecure_channel(auth.address) as channel:
        stub = pb_grpc.AuthServiceStub(channel)
        outcomes = await asyncio.gather(*(attempt(stub) for _ in range(200)))
    evaluated = sum(o == FAILED for o in outcomes)
    assert 1 <= evaluated <= 5, f"{evaluated} passwords were checked"
    assert sum(o == THROTTLED for o in outcomes) == 200 - evaluated


def test_the_client_is_the_address_envoy_saw_not_the_gateway(auth: AuthService) -> None:
    attacker, bystander = "203.0.113.7", "198.51.100.9"
    for _ in range(20):  # a spray: every name different, so only the per-client count grows
        assert login(auth, f"nobody-{secrets.token_hex(4)}", "wrong-password", f"10.0.0.1, {attacker}") == FAILED
    assert login(auth, "nobody-else", "wrong-password", attacker) == THROTTLED
    # Someone else behind the same gateway (same peer) is not locked out...
    username, password, _ = auth.new_user()
    assert login(auth, username, password, bystander)["code"] == grpc.StatusCode.OK
    # ...and the attacker cannot pick a fresh key by claiming one on the left.
    assert login(auth, "nobody-else", "wrong-password", f"192.0.2.1, {attacker}") == THROTTLED


def test_overlong_usernames_are_refused_before_any_lookup_or_throttle_key(auth: AuthService) -> None:
    client = "192.0.2.44"
    for _ in range(25):
        assert login(auth, "x" * 10_000 + secrets.token_hex(4), "wrong-password", client) == FAILED
    username, password, _ = auth.new_user()
    assert login(auth, username, password, client)["code"] == grpc.StatusCode.OK  # not counted against it


def test_change_password_is_throttled_like_login(auth: AuthService) -> None:
    username, password, token = auth.new_user()
    stub = auth.stub(token)
    outcomes = []
    for _ in range(8):
        try:
            stub.ChangePassword(pb.ChangePasswordRequest(name="users/me", current_password="wrong-password-here",
                                                         new_password="another-long-password"), timeout=30)
        except grpc.RpcError as error:
            found = failure(error)
            outcomes.append({k: found[k] for k in ("code", "reason")})
    assert outcomes[:5] == [FAILED] * 5 and outcomes[5:] == [THROTTLED] * 3
    assert login(auth, username, password) == THROTTLED  # the same count as Login's


# ---- the throttle itself ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expired_keys_are_pruned() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=5, window_seconds=60, clock=clock)
    for i in range(100):
        throttle.failed(f"user:made-up-{i}")
    assert len(throttle) == 100
    clock.now += 120
    throttle.failed("user:fresh")
    assert len(throttle) == 1


def test_keys_are_bounded_dropping_the_least_recent() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=2, max_keys=50, clock=clock)
    for _ in range(3):
        throttle.failed("user:victim")
    for i in range(49):
        throttle.failed(f"user:spray-{i}")
    throttle.failed("user:victim")  # the victim's lock stays: it failed most recently
    for i in range(49, 60):
        throttle.failed(f"user:spray-{i}")
    assert len(throttle) == 50
    with pytest.raises(ResourceExhausted):
        throttle.check("user:victim")


def test_attempt_counts_before_the_answer_and_forgive_takes_it_back() -> None:
    throttle = LoginThrottle(free_failures=2, clock=Clock())
    first = throttle.attempt("client:a")
    throttle.attempt("client:a")
    with pytest.raises(ResourceExhausted):
        throttle.attempt("client:a")
    throttle.forgive("client:a", first)
    throttle.check("client:a")


class Context:
    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self._peer, self._metadata = peer, metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


@pytest.mark.parametrize(("hops", "forwarded", "expected"), [
    (0, "203.0.113.7", "ipv4:127.0.0.1"),  # no proxy: the header is the client's claim
    (1, "", "ipv4:127.0.0.1"),  # not through the proxy
    (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),
    (2, "6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
    (1, "2001:DB8::1", "2001:db8::1"),
])
def test_client_address(hops: int, forwarded: str, expected: str) -> None:
    metadata = (("x-forwarded-for", forwarded),) if forwarded else ()
    assert client_address(Context("ipv4:127.0.0.1:5555", metadata), hops) == expected


def _reason(error: aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2, status_pb2

    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


