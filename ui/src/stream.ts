// Long-lived server streams that survive lost connections: reconnect with backoff from a cursor.
import { useState } from "react";
import { isAbort, problem, type ApiProblem } from "./api";

export type Link = "connecting" | "live" | "reconnecting" | "ended";

export interface StreamState {
  link: Link;
  error: ApiProblem | null;
}

/**
 * Runs `open(signal)` (which consumes one stream until it ends) again and again until `stop` is
 * aborted or `open` returns true ("done"). Each failure waits a little longer (0.5 s … 5 s);
 * `open` resumes from its own cursor, so nothing is missed or seen twice.
 */
export async function resilient(
  open: (signal: AbortSignal, markLive: () => void) => Promise<boolean>,
  stop: AbortSignal,
  report: (state: StreamState) => void,
): Promise<void> {
  let delay = 500;
  let first = true;
  while (!stop.aborted) {
    report({ link: first ? "connecting" : "reconnecting", error: null });
    try {
      const done = await open(stop, () => {
        delay = 500;
        report({ link: "live", error: null });
      });
      if (done) {
        report({ link: "ended", error: null });
        return;
      }
    } catch (err) {
      if (stop.aborted || isAbort(err)) return;
      const p = problem(err);
      if (p.code === "UNAUTHENTICATED" || p.code === "PERMISSION_DENIED" || p.code === "NOT_FOUND" ||
          p.code === "INVALID_ARGUMENT") {
        report({ link: "ended", error: p });
        return;
      }
      report({ link: "reconnecting", error: p });
    }
    first = false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 5000);
  }
}

/** Calls `fn` at most once per animation frame, however often `schedule` is called. */
export function useFrameBatch(): (fn: () => void) => void {
  const [batch] = useState(() => {
    let pending: (() => void) | null = null;
    return (fn: () => void) => {
      const first = pending === null;
      pending = fn;
      if (first) {
        requestAnimationFrame(() => {
          const run = pending;
          pending = null;
          run?.();
        });
      }
    };
  });
  return batch;
}

/**
 * For loops that consume a fast stream (a log read from the store, a job's replay): messages already
 * buffered are handed over as microtasks, one after the other, and would keep the main thread for
 * as long as they last. The returned function yields to the event loop (so frames are drawn and
 * input is handled) once `budgetMs` of work went by since the last yield; otherwise it costs nothing.
 */
export function timeSlicer(budgetMs = 20): () => Promise<void> | undefined {
  let since = performance.now();
  return () => {
    if (performance.now() - since < budgetMs) return undefined;
    return new Promise<void>((resolve) => setTimeout(() => {
      since = performance.now();
      resolve();
    }, 0));
  };
}
