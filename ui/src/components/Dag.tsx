// The job's DAG, drawn as SVG. The structure (names and dependencies) is laid out once: with dagre
// for small graphs, with a linear-time layered layout above LARGE tasks (dagre takes ~1 s of main
// thread at 1,000 tasks even without crossing minimisation, the layered layout a few milliseconds).
// States arrive separately; only a node whose state changed re-renders. Only the nodes in and near
// the scrolled view are in the DOM (a 1,000-task DAG shows ~100 at a time); all the edges are two
// <path>s (lines, arrowheads), drawn once.
import { Graph, layout } from "@dagrejs/dagre";
import { memo, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { useFrameBatch } from "../stream";

export interface DagNode {
  name: string;
  depends: readonly string[];
}

export interface NodeState {
  state: string;
  attempt: number;
}

const W = 168;
const H = 38;
const NODESEP = 14;
const RANKSEP = 48;
const MARGIN = 12;
/** Above this many tasks the layered layout replaces dagre. */
export const LARGE = 200;

interface Edge {
  d: string;
  /** The end point and the direction the edge arrives from (a unit vector). */
  tip: { x: number; y: number; dx: number; dy: number };
}

interface Placed {
  nodes: Map<string, { x: number; y: number }>;
  edges: Edge[];
  width: number;
  height: number;
}

/** How far beyond the visible part of the graph nodes are drawn, in pixels. */
const AHEAD = 400;

function dagreLayout(structure: readonly DagNode[]): Placed {
  const g = new Graph();
  // longest-path ranking is linear; network-simplex (dagre's default) takes a minute at 1,000 tasks.
  g.setGraph({ rankdir: "LR", nodesep: NODESEP, ranksep: RANKSEP, marginx: MARGIN, marginy: MARGIN, ranker: "longest-path" });
  g.setDefaultEdgeLabel(() => ({}));
  const names = new Set(structure.map((t) => t.name));
  for (const t of structure) g.setNode(t.name, { width: W, height: H });
  for (const t of structure) for (const d of t.depends) if (names.has(d)) g.setEdge(d, t.name);
  layout(g);
  const nodes = new Map<string, { x: number; y: number }>();
  for (const name of g.nodes()) {
    const n = g.node(name);
    nodes.set(name, { x: n.x, y: n.y });
  }
  const edges = g.edges().map((e): Edge => {
    const points = (g.edge(e).points ?? []) as { x: number; y: number }[];
    const d = points.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join("");
    const last = points[points.length - 1] ?? { x: 0, y: 0 };
    const before = points[points.length - 2] ?? { x: last.x - 1, y: last.y };
    const length = Math.hypot(last.x - before.x, last.y - before.y) || 1;
    return { d, tip: { x: last.x, y: last.y, dx: (last.x - before.x) / length, dy: (last.y - before.y) / length } };
  });
  const label = g.graph();
  return { nodes, edges, width: label.width ?? 0, height: label.height ?? 0 };
}

/**
 * A layered (Sugiyama-style) layout in O(tasks + dependencies) per sweep: ranks by longest path
 * from the sources, the order inside each rank from two barycenter sweeps (down, then up), each
 * rank centred; edges are curves between neighbouring sides.
 */
export function layeredLayout(structure: readonly DagNode[]): Placed {
  const index = new Map<string, number>();
  structure.forEach((t, i) => index.set(t.name, i));
  const n = structure.length;
  const preds: number[][] = structure.map((t) => t.depends.map((d) => index.get(d)).filter((i): i is number => i !== undefined));
  const succs: number[][] = structure.map(() => []);
  const indegree = new Int32Array(n);
  preds.forEach((ps, i) => {
    indegree[i] = ps.length;
    for (const p of ps) succs[p]?.push(i);
  });
  // Longest path from the sources (Kahn's order); tasks on a cycle (never in a valid spec) stay at rank 0.
  const rank = new Int32Array(n);
  const queue: number[] = [];
  for (let i = 0; i < n; i++) if (indegree[i] === 0) queue.push(i);
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head]!;
    for (const s of succs[v]!) {
      rank[s] = Math.max(rank[s]!, rank[v]! + 1);
      indegree[s] = indegree[s]! - 1;
      if (indegree[s] === 0) queue.push(s);
    }
  }
  const ranks: number[][] = [];
  for (let i = 0; i < n; i++) (ranks[rank[i]!] ??= []).push(i);
  const position = new Float64Array(n);
  const number = (): void => {
    for (const r of ranks) r?.forEach((v, i) => { position[v] = i; });
  };
  number();
  const sweep = (neighbours: number[][], order: number[]): void => {
    for (const r of order) {
      const layer = ranks[r];
      if (!layer) continue;
      const key = new Map<number, number>();
      for (const v of layer) {
        const ns = neighbours[v]!;
        key.set(v, ns.length ? ns.reduce((sum, u) => sum + position[u]!, 0) / ns.length : position[v]!);
      }
      layer.sort((a, b) => key.get(a)! - key.get(b)! || position[a]! - position[b]!);
      layer.forEach((v, i) => { position[v] = i; });
    }
  };
  const down = ranks.map((_, r) => r).slice(1);
  sweep(preds, down);
  sweep(succs, [...down].reverse().map((r) => r - 1));
  const tallest = Math.max(0, ...ranks.map((r) => r?.length ?? 0));
  const nodes = new Map<string, { x: number; y: number }>();
  ranks.forEach((layer, r) => {
    const offset = ((tallest - layer.length) * (H + NODESEP)) / 2;
    layer.forEach((v, i) => {
      nodes.set(structure[v]!.name, { x: MARGIN + r * (W + RANKSEP) + W / 2, y: MARGIN + offset + i * (H + NODESEP) + H / 2 });
    });
  });
  const edges: Placed["edges"] = [];
  preds.forEach((ps, v) => {
    const to = nodes.get(structure[v]!.name)!;
    for (const p of ps) {
      const from = nodes.get(structure[p]!.name)!;
      const x1 = from.x + W / 2;
      const x2 = to.x - W / 2;
      const mid = (x1 + x2) / 2;
      edges.push({
        d: `M${x1},${from.y.toFixed(1)}C${mid},${from.y.toFixed(1)} ${mid},${to.y.toFixed(1)} ${x2},${to.y.toFixed(1)}`,
        tip: { x: x2, y: to.y, dx: 1, dy: 0 },
      });
    }
  });
  return {
    nodes, edges,
    width: 2 * MARGIN + ranks.length * W + Math.max(0, ranks.length - 1) * RANKSEP,
    height: 2 * MARGIN + tallest * H + Math.max(0, tallest - 1) * NODESEP,
  };
}

const Node = memo(function Node({ name, x, y, state, attempt, selected, onSelect }: {
  name: string; x: number; y: number; state: string; attempt: number; selected: boolean;
  onSelect: (name: string) => void;
}): ReactNode {
  const short = name.length > 20 ? `${name.slice(0, 19)}…` : name;
  return (
    <g className={`node state-${state.toLowerCase()}${selected ? " selected" : ""}`} data-task={name}
      data-state={state} transform={`translate(${x - W / 2},${y - H / 2})`} onClick={() => onSelect(name)}>
      <title>{`${name}: ${state}${attempt > 1 ? ` (attempt ${attempt})` : ""}`}</title>
      <rect width={W} height={H} rx={6} />
      <text x={10} y={16}>{short}</text>
      <text x={10} y={31} className="node-state">{state}{attempt > 1 ? ` · attempt ${attempt}` : ""}</text>
    </g>
  );
});

/** Every edge in one path and every arrowhead in another: two DOM nodes however large the graph. */
const Edges = memo(function Edges({ edges }: { edges: Edge[] }): ReactNode {
  const lines = edges.map((e) => e.d).join("");
  const heads = edges.map(({ tip: { x, y, dx, dy } }) => {
    const bx = x - dx * 7;
    const by = y - dy * 7;
    return `M${(bx - dy * 3.5).toFixed(1)},${(by + dx * 3.5).toFixed(1)}L${x.toFixed(1)},${y.toFixed(1)}L${(bx + dy * 3.5).toFixed(1)},${(by - dx * 3.5).toFixed(1)}z`;
  }).join("");
  return <g className="edges"><path d={lines} /><path className="heads" d={heads} /></g>;
});

const UNKNOWN: NodeState = { state: "PENDING", attempt: 0 };

/**
 * `structure` must keep its identity while the job's tasks stay the same (the layout is computed
 * once per identity); `states` changes as events arrive.
 */
export function Dag({ structure, states, selected, onSelect }: {
  structure: readonly DagNode[]; states: ReadonlyMap<string, NodeState>; selected: string;
  onSelect: (name: string) => void;
}): ReactNode {
  const placed = useMemo(() => (structure.length > LARGE ? layeredLayout(structure) : dagreLayout(structure)), [structure]);
  const box = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ left: 0, top: 0, width: 1600, height: 1000 });
  const batch = useFrameBatch();
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = (): void => setView({ left: el.scrollLeft, top: el.scrollTop, width: el.clientWidth, height: el.clientHeight });
    const resize = new ResizeObserver(measure);
    resize.observe(el);
    measure();
    return () => resize.disconnect();
  }, []);
  const inView = (x: number, y: number): boolean =>
    x + W / 2 >= view.left - AHEAD && x - W / 2 <= view.left + view.width + AHEAD &&
    y + H / 2 >= view.top - AHEAD && y - H / 2 <= view.top + view.height + AHEAD;
  return (
    <div className="dag" data-testid="dag" data-tasks={structure.length} ref={box}
      onScroll={(e) => {
        const el = e.currentTarget;
        batch(() => setView({ left: el.scrollLeft, top: el.scrollTop, width: el.clientWidth, height: el.clientHeight }));
      }}>
      <svg width={placed.width} height={placed.height} viewBox={`0 0 ${placed.width} ${placed.height}`}>
        <Edges edges={placed.edges} />
        {structure.map((t) => {
          const at = placed.nodes.get(t.name);
          if (!at || (!inView(at.x, at.y) && t.name !== selected)) return null;
          const s = states.get(t.name) ?? UNKNOWN;
          return <Node key={t.name} name={t.name} x={at.x} y={at.y} state={s.state} attempt={s.attempt}
            selected={t.name === selected} onSelect={onSelect} />;
        })}
      </svg>
    </div>
  );
}
