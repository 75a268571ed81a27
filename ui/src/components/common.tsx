import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { useEffect, useRef, type ReactNode } from "react";
import type { ApiProblem } from "../api";
import type { Link } from "../stream";

/** An API error as the API stated it: code, reason, message and every field violation. */
export function ErrorBox({ error, title }: { error: ApiProblem | null; title?: string }): ReactNode {
  if (!error) return null;
  return (
    <div className="error" role="alert" data-testid="api-error">
      <div className="error-head">
        {title ? <strong>{title}: </strong> : null}
        <code className="error-code">{error.code}</code>
        {error.reason && error.reason !== error.code ? <code className="error-reason">{error.reason}</code> : null}
      </div>
      <div className="error-message">{error.message}</div>
      {error.violations.length > 0 ? (
        <ul className="violations">
          {error.violations.map((v, i) => (
            <li key={i} data-testid="violation">
              <code className="violation-field">{v.field || "(request)"}</code> {v.description}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export function LinkBadge({ link }: { link: Link }): ReactNode {
  const text = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", ended: "ended" }[link];
  return <span className={`link link-${link}`} data-testid="link-state">{text}</span>;
}

export function stateName(value: string): string {
  return value.replace(/^STATE_/, "");
}

export function StateBadge({ state }: { state: string }): ReactNode {
  const name = stateName(state);
  return <span className={`state state-${name.toLowerCase()}`}>{name}</span>;
}

export function time(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toLocaleString() : "";
}

export function duration(start: Timestamp | undefined, end: Timestamp | undefined, now = Date.now()): string {
  if (!start) return "";
  const ms = (end ? timestampDate(end).getTime() : now) - timestampDate(start).getTime();
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 100) / 10;
  if (s < 120) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 120 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function bytes(n: bigint | number | undefined): string {
  if (n === undefined) return "";
  let v = Number(n);
  for (const unit of ["B", "KiB", "MiB", "GiB", "TiB"]) {
    if (v < 1024 || unit === "TiB") return `${v.toFixed(unit === "B" ? 0 : 1)} ${unit}`;
    v /= 1024;
  }
  return "";
}

/** A confirmation dialog (the native <dialog>, modal). */
export function Confirm({ open, title, children, confirmLabel, onConfirm, onCancel }: {
  open: boolean;
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}): ReactNode {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} onCancel={onCancel} aria-label={title}>
      <h3>{title}</h3>
      {children}
      <div className="actions">
        <button type="button" onClick={onCancel}>Keep</button>
        <button type="button" className="danger" onClick={onConfirm}>{confirmLabel}</button>
      </div>
    </dialog>
  );
}
