import { useEffect, useState, type ReactNode } from "react";
import { midgard, problem, type ApiProblem } from "../api";
import { bytes, ErrorBox, LinkBadge, StateBadge, time } from "../components/common";
import { Gpu_State, NodeChange_Type, Node_State, type Node } from "../gen/odin/midgard/v1/midgard_pb";
import { href } from "../router";
import { resilient, useFrameBatch, type Link } from "../stream";

/** Nodes and their GPUs, live from WatchNodes (which starts with every known node). */
export function NodesPage(): ReactNode {
  const [nodes, setNodes] = useState<Map<string, Node>>(new Map());
  const [error, setError] = useState<ApiProblem | null>(null);
  const [link, setLink] = useState<Link>("connecting");
  const batch = useFrameBatch();

  useEffect(() => {
    const stop = new AbortController();
    let pending = new Map<string, Node | null>();
    void resilient(async (signal, markLive) => {
      const first = await midgard.listNodes({ pageSize: 1000 }, { signal });
      setNodes(new Map(first.nodes.map((n) => [n.name, n])));
      markLive();
      for await (const message of midgard.watchNodes({}, { signal })) {
        markLive();
        if (message.kind.case !== "change") continue;
        const change = message.kind.value;
        if (!change.node) continue;
        pending.set(change.node.name, change.type === NodeChange_Type.REMOVED ? null : change.node);
        batch(() => {
          const changes = pending;
          pending = new Map();
          setNodes((old) => {
            const next = new Map(old);
            for (const [name, node] of changes) {
              if (node) next.set(name, node);
              else next.delete(name);
            }
            return next;
          });
        });
      }
      return false;
    }, stop.signal, (s) => {
      setLink(s.link);
      setError(s.error);
    });
    return () => stop.abort();
  }, [batch]);

  return (
    <div className="page">
      <div className="page-head"><h2>Nodes & GPUs</h2><LinkBadge link={link} /></div>
      <ErrorBox error={error} />
      {[...nodes.values()].sort((a, b) => a.name.localeCompare(b.name)).map((node) => (
        <section key={node.name} className="node-card" data-testid="node">
          <h3>{node.name} <StateBadge state={Node_State[node.state]} /> <span className="muted small">{node.stateMessage}</span></h3>
          <div className="muted small">
            {node.system?.cpuModel} · {node.system?.cpuCount} CPUs · {node.system?.cpuPercent.toFixed(0)}% CPU ·
            memory {bytes(node.system?.memoryAvailableBytes)} free of {bytes(node.system?.memoryTotalBytes)} ·
            collected {time(node.collectTime)}
          </div>
          {node.gpuDriver && !node.gpuDriver.available ? (
            <p className="muted">No GPUs: {node.gpuDriver.unavailableReason}</p>
          ) : (
            <table className="gpus">
              <thead><tr><th>GPU</th><th>Model</th><th>State</th><th>Utilization</th><th>Memory</th><th>Temp</th><th>Used by</th></tr></thead>
              <tbody>
                {node.gpus.map((gpu) => (
                  <tr key={gpu.name}>
                    <td>{gpu.index}</td>
                    <td>{gpu.productName}</td>
                    <td><StateBadge state={Gpu_State[gpu.state]} /></td>
                    <td>{gpu.utilizationGpuPercent ?? "?"}%</td>
                    <td>{bytes(gpu.memoryUsedBytes)} / {bytes(gpu.memoryTotalBytes)}</td>
                    <td>{gpu.temperatureCelsius ?? "?"} °C</td>
                    <td>{gpu.processes.length === 0 ? <span className="muted">idle</span> : gpu.processes.map((p) => (
                      <div key={String(p.pid)}>
                        {p.job ? <a href={href(`/${p.job}`)}>{p.task ? p.task.replace(/^jobs\//, "") : p.job}</a>
                          : p.podName ? `${p.podNamespace}/${p.podName}` : p.processName}
                        <span className="muted"> pid {String(p.pid)} · {bytes(p.usedMemoryBytes)}</span>
                      </div>
                    ))}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      ))}
      {nodes.size === 0 && link === "live" ? <p className="muted">No nodes.</p> : null}
    </div>
  );
}
