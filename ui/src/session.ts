// The login session: tokens in localStorage, refreshed before the access token expires.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AuthService, type TokenPair } from "./gen/odin/auth/v1/auth_pb";

const KEY = "odin.session";
const EARLY_MS = 30_000; // refresh this long before the access token expires

interface Stored {
  user: string;
  accessToken: string;
  accessExpires: number;
  refreshToken: string;
  refreshExpires: number;
}

// Login and refresh need no token: a plain client, so a failing refresh cannot recurse.
const open = createClient(AuthService, createGrpcWebTransport({ baseUrl: window.location.origin }));

type Listener = () => void;

class Session {
  private state: Stored | null = load();
  private refreshing: Promise<boolean> | null = null;
  private timer: number | undefined;
  private listeners = new Set<Listener>();

  constructor() {
    this.schedule();
    window.addEventListener("storage", (e) => {
      if (e.key === KEY) {
        this.state = load();
        this.emit();
      }
    });
  }

  get user(): string | null {
    return this.state?.user ?? null;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async login(username: string, password: string): Promise<void> {
    const reply = await open.login({ username, password });
    if (!reply.tokens) throw new ConnectError("login answered without tokens", Code.Internal);
    this.store(reply.user?.name ?? `users/${username}`, reply.tokens);
  }

  async logout(): Promise<void> {
    const state = this.state;
    this.clear();
    if (state) {
      await open.logout({ refreshToken: state.refreshToken }, {
        headers: { authorization: `Bearer ${state.accessToken}` },
      }).catch(() => undefined);
    }
  }

  /** A valid access token (refreshed first when it is about to expire), or null when logged out. */
  async accessToken(): Promise<string | null> {
    if (!this.state) return null;
    if (this.state.accessExpires - Date.now() < EARLY_MS) await this.refresh();
    return this.state?.accessToken ?? null;
  }

  /** Exchanges the refresh token for a new pair; false (and logged out) when that is refused. */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** The API refused `token` for good: forget it (unless a newer login replaced it); the app shows login. */
  expired(token: string | null): void {
    if (token === null || this.state?.accessToken === token) this.clear();
  }

  private async doRefresh(): Promise<boolean> {
    const state = this.state;
    if (!state || state.refreshExpires < Date.now()) {
      if (this.state === state) this.clear();
      return false;
    }
    try {
      const reply = await open.refreshToken({ refreshToken: state.refreshToken });
      if (!reply.tokens) throw new Error("no tokens");
      this.store(state.user, reply.tokens);
      return true;
    } catch (err) {
      const code = ConnectError.from(err).code;
      // Only a refusal ends the session; a network failure keeps it for the next try.
      if ((code === Code.Unauthenticated || code === Code.PermissionDenied || code === Code.InvalidArgument) &&
          this.state === state) {
        this.clear();
      }
      return false;
    }
  }

  private store(user: string, tokens: TokenPair): void {
    const far = Date.now() + 3600_000;
    this.state = {
      user,
      accessToken: tokens.accessToken,
      accessExpires: tokens.accessTokenExpireTime ? timestampDate(tokens.accessTokenExpireTime).getTime() : far,
      refreshToken: tokens.refreshToken,
      refreshExpires: tokens.refreshTokenExpireTime ? timestampDate(tokens.refreshTokenExpireTime).getTime() : far,
    };
    localStorage.setItem(KEY, JSON.stringify(this.state));
    this.schedule();
    this.emit();
  }

  private clear(): void {
    const had = this.state !== null;
    this.state = null;
    localStorage.removeItem(KEY);
    window.clearTimeout(this.timer);
    if (had) this.emit();
  }

  private schedule(): void {
    window.clearTimeout(this.timer);
    if (!this.state) return;
    const wait = Math.max(1000, this.state.accessExpires - Date.now() - EARLY_MS);
    this.timer = window.setTimeout(() => void this.refresh(), Math.min(wait, 2 ** 31 - 1));
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }
}

function load(): Stored | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Stored) : null;
  } catch {
    return null;
  }
}

export const session = new Session();
