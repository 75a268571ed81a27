import { diffLines } from "diff";
import { useEffect, useState, type ReactNode } from "react";
import { pipelines, problem, scheduler, type ApiProblem } from "../api";
import { ErrorBox, time } from "../components/common";
import type { Pipeline, Revision } from "../gen/odin/pipelines/v1/pipelines_pb";
import { href, navigate, useRoute } from "../router";

export function PipelinesPage({ name }: { name: string }): ReactNode {
  const [list, setList] = useState<Pipeline[] | null>(null);
  const [error, setError] = useState<ApiProblem | null>(null);
  useEffect(() => {
    (async () => {
      const found: Pipeline[] = [];
      let pageToken = "";
      do {
        const reply = await pipelines.listPipelines({ pageSize: 200, pageToken });
        found.push(...reply.pipelines);
        pageToken = reply.nextPageToken;
      } while (pageToken);
      setList(found);
    })().catch((err) => setError(problem(err)));
  }, []);
  return (
    <div className="page pipelines-page">
      <div className="page-head"><h2>Pipelines</h2></div>
      <ErrorBox error={error} />
      <div className="split">
        <ul className="pipeline-list" data-testid="pipeline-list">
          {list?.map((p) => (
            <li key={p.name} className={p.name === name ? "active" : ""}>
              <a href={href(`/pipelines/${p.name}`)}>{p.displayName || p.name}</a>
              <div className="muted small">{p.revision?.commit.slice(0, 8)} · {time(p.revision?.commitTime)}</div>
            </li>
          ))}
          {list && list.length === 0 ? <li className="muted">No pipelines yet: `odin pipelines push DIR`.</li> : null}
        </ul>
        {name ? <PipelineDetail key={name} name={name} /> : <p className="muted">Pick a pipeline.</p>}
      </div>
    </div>
  );
}

function PipelineDetail({ name }: { name: string }): ReactNode {
  const route = useRoute();
  const tab = route.query.get("tab") ?? "files";
  const revision = route.query.get("revision") ?? "";
  const [pipeline, setPipeline] = useState<Pipeline | null>(null);
  const [error, setError] = useState<ApiProblem | null>(null);
  const [file, setFile] = useState("main.yml");
  useEffect(() => {
    setPipeline(null);
    pipelines.getPipeline({ name, revision }).then((r) => setPipeline(r.pipeline ?? null), (err) => setError(problem(err)));
  }, [name, revision]);
  const go = (to: string, extra?: Record<string, string>): void =>
    navigate(`/pipelines/${name}`, { tab: to, revision: revision || undefined, ...extra });
  const content = pipeline?.files.find((f) => f.path === file)?.content;
  return (
    <section className="pipeline-detail">
      <h3>{name} {revision ? <code>@ {revision.slice(0, 10)}</code> : null}</h3>
      <div className="tabs">
        {["files", "history", "run"].map((t) => (
          <button key={t} type="button" className={tab === t ? "active" : ""} onClick={() => go(t)}>{t}</button>
        ))}
      </div>
      <ErrorBox error={error} />
      {tab === "files" && pipeline ? (
        <div className="files">
          <ul>{pipeline.files.map((f) => (
            <li key={f.path}><button type="button" className={`linkish${f.path === file ? " active" : ""}`} onClick={() => setFile(f.path)}>{f.path}</button></li>
          ))}</ul>
          <pre className="file" data-testid="file-content">{content ?? ""}</pre>
        </div>
      ) : null}
      {tab === "history" ? <History name={name} /> : null}
      {tab === "run" && pipeline ? <RunForm name={name} revision={revision || pipeline.revision?.commit || ""} /> : null}
    </section>
  );
}

function History({ name }: { name: string }): ReactNode {
  const [revisions, setRevisions] = useState<Revision[] | null>(null);
  const [error, setError] = useState<ApiProblem | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  useEffect(() => {
    pipelines.listPipelineRevisions({ name, pageSize: 100 }).then((r) => setRevisions(r.revisions), (err) => setError(problem(err)));
  }, [name]);
  return (
    <div className="history">
      <ErrorBox error={error} />
      <ol>
        {revisions?.map((r, i) => (
          <li key={r.commit}>
            <button type="button" className="linkish" onClick={() => setOpen(open === i ? null : i)}>
              <code>{r.commit.slice(0, 10)}</code> {r.message.split("\n")[0]}</button>
            <span className="muted"> — {r.authorName} · {time(r.commitTime)}</span>
            {" "}<a href={href(`/pipelines/${name}`, { revision: r.commit })}>browse</a>
            {open === i ? <RevisionDiff name={name} revision={r.commit} previous={revisions[i + 1]?.commit ?? ""} /> : null}
          </li>
        ))}
      </ol>
    </div>
  );
}

function RevisionDiff({ name, revision, previous }: { name: string; revision: string; previous: string }): ReactNode {
  const [files, setFiles] = useState<{ path: string; before: string; after: string }[] | null>(null);
  const [error, setError] = useState<ApiProblem | null>(null);
  useEffect(() => {
    const get = (rev: string): Promise<Map<string, string>> => rev
      ? pipelines.getPipeline({ name, revision: rev }).then((r) => new Map((r.pipeline?.files ?? []).map((f) => [f.path, f.content])))
      : Promise.resolve(new Map());
    Promise.all([get(previous), get(revision)]).then(([before, after]) => {
      const paths = [...new Set([...before.keys(), ...after.keys()])].sort();
      setFiles(paths.map((path) => ({ path, before: before.get(path) ?? "", after: after.get(path) ?? "" }))
        .filter((f) => f.before !== f.after));
    }, (err) => setError(problem(err)));
  }, [name, revision, previous]);
  return (
    <div className="diff" data-testid="diff">
      <ErrorBox error={error} />
      {files?.length === 0 ? <p className="muted">No file changed.</p> : null}
      {files?.map((f) => (
        <div key={f.path}>
          <h4>{f.path}</h4>
          <pre>{diffLines(f.before, f.after).map((part, i) => (
            <span key={i} className={part.added ? "add" : part.removed ? "del" : "same"}>
              {part.value.split("\n").filter((_, j, all) => j < all.length - 1 || all[j] !== "")
                .map((line) => `${part.added ? "+" : part.removed ? "-" : " "} ${line}\n`).join("")}
            </span>
          ))}</pre>
        </div>
      ))}
    </div>
  );
}

function RunForm({ name, revision }: { name: string; revision: string }): ReactNode {
  const [params, setParams] = useState("{}");
  const [labels, setLabels] = useState("");
  const [error, setError] = useState<ApiProblem | null>(null);
  const [busy, setBusy] = useState(false);
  async function run(): Promise<void> {
    setError(null);
    let parameters: Record<string, unknown>;
    try {
      parameters = JSON.parse(params || "{}") as Record<string, unknown>;
    } catch (err) {
      setError({ code: "INVALID_ARGUMENT", message: `parameters: ${String(err)}`, reason: "", domain: "", metadata: {}, violations: [] });
      return;
    }
    setBusy(true);
    try {
      const reply = await scheduler.createJob({
        requestId: crypto.randomUUID(),
        source: { case: "pipeline", value: { name, revision } },
        parameters: parameters as never,
        labels: Object.fromEntries(labels.split(",").map((s) => s.trim()).filter(Boolean).map((s) => s.split("=", 2) as [string, string])),
      });
      if (reply.job) navigate(`/${reply.job.name}`);
    } catch (err) {
      setError(problem(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form className="run-form" onSubmit={(e) => { e.preventDefault(); void run(); }}>
      <label>Parameters (JSON object)<textarea name="parameters" rows={5} value={params} onChange={(e) => setParams(e.target.value)} /></label>
      <label>Labels <input name="labels" placeholder="k=v,k2=v2" value={labels} onChange={(e) => setLabels(e.target.value)} /></label>
      <button type="submit" disabled={busy}>Run {name.split("/").pop()}</button>
      <ErrorBox error={error} />
    </form>
  );
}
