import { useState, type FormEvent, type ReactNode } from "react";
import { problem, type ApiProblem } from "../api";
import { ErrorBox } from "../components/common";
import { navigate } from "../router";
import { session } from "../session";

export function LoginPage({ next }: { next: string }): ReactNode {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<ApiProblem | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent): Promise<void> {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await session.login(username, password);
      const [path = "/jobs", query = ""] = next.split("?", 2);
      navigate(path.startsWith("/login") ? "/jobs" : path, Object.fromEntries(new URLSearchParams(query)), true);
    } catch (err) {
      setError(problem(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="login">
      <form onSubmit={(e) => void submit(e)}>
        <h1>Odin</h1>
        <label>Username <input name="username" autoComplete="username" value={username}
          onChange={(e) => setUsername(e.target.value)} autoFocus /></label>
        <label>Password <input name="password" type="password" autoComplete="current-password" value={password}
          onChange={(e) => setPassword(e.target.value)} /></label>
        <button type="submit" disabled={busy}>Log in</button>
        <ErrorBox error={error} />
      </form>
    </div>
  );
}
