import { useState, type ReactNode } from "react";
import { pipelines, problem, scheduler, type ApiProblem } from "../api";
import { ErrorBox } from "../components/common";
import { navigate } from "../router";

const SAMPLE = `name: hello-inline
tasks:
  - name: hello
    image: python:3.12-slim
    command: [python3, -c, "print('hello from the console')"]
`;

/** Runs a pipeline given inline (main.yml text); Validate reports the problems without running. */
export function NewJobPage(): ReactNode {
  const [yaml, setYaml] = useState(SAMPLE);
  const [error, setError] = useState<ApiProblem | null>(null);
  const [checked, setChecked] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function validate(): Promise<void> {
    setError(null);
    setChecked(null);
    try {
      const reply = await pipelines.validatePipeline({
        source: { case: "pipeline", value: { name: "pipelines/inline", files: [{ path: "main.yml", content: yaml }] } },
      });
      if (reply.violations.length) {
        setError({ code: "INVALID_ARGUMENT", message: "the pipeline is not valid", reason: "", domain: "", metadata: {},
          violations: reply.violations.map((v) => ({ field: v.field, description: v.description })) });
      } else {
        setChecked(`valid; task order: ${reply.taskOrder.join(" → ")}`);
      }
    } catch (err) {
      setError(problem(err));
    }
  }

  async function run(): Promise<void> {
    setError(null);
    setChecked(null);
    setBusy(true);
    try {
      const reply = await scheduler.createJob({
        requestId: crypto.randomUUID(), source: { case: "inline", value: { mainYml: yaml, files: {} } },
      });
      if (reply.job) navigate(`/${reply.job.name}`);
    } catch (err) {
      setError(problem(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="page">
      <div className="page-head"><h2>New job from main.yml</h2></div>
      <form className="new-job" onSubmit={(e) => { e.preventDefault(); void run(); }}>
        <textarea name="main.yml" aria-label="main.yml" rows={18} spellCheck={false} value={yaml} onChange={(e) => setYaml(e.target.value)} />
        <div className="actions">
          <button type="button" onClick={() => void validate()}>Validate</button>
          <button type="submit" disabled={busy}>Run</button>
        </div>
      </form>
      {checked ? <p className="ok" data-testid="valid">{checked}</p> : null}
      <ErrorBox error={error} title="The API refused the pipeline" />
    </div>
  );
}
