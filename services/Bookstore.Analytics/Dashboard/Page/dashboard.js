// The dashboard: polls /dashboard/state every second and redraws. Everything that comes from
// Kafka (keys, types, client ids) is inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const time = (iso) => new Date(iso).toLocaleTimeString();
const shortType = (type) => type.replace(/^bookstore\./, "").replace(/\.v\d+$/, "");

function sparkline(values) {
  const width = 160, height = 24, max = Math.max(1, ...values);
  const points = values.map((v, i) => `${(i * width / Math.max(1, values.length - 1)).toFixed(1)},${(height - 1 - v * (height - 2) / max).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

function renderBrokers(brokers) {
  $("brokers").replaceChildren(...brokers.map((b) =>
    el("div", { class: `card broker${b.up ? "" : " down-card"}`, "data-broker": b.id, "data-up": String(b.up) },
      el("strong", {}, `broker ${b.id}`), " ", el("span", { class: b.up ? "up" : "down" }, b.up ? "up" : "DOWN"),
      el("div", {}, `${b.host}:${b.port}`),
      el("div", {}, `leads ${b.leads} partition(s)`))));
}

function renderTopics(topics, throughput) {
  const rates = Object.fromEntries(throughput.map((t) => [t.topic, t.perSecond]));
  $("topics").replaceChildren(...topics.map((topic) => {
    const perSecond = rates[topic.name] ?? [];
    const lastMinute = perSecond.slice(-60);
    const rate = lastMinute.slice(-5).reduce((a, b) => a + b, 0) / 5;
    return el("div", { class: "topic", "data-topic": topic.name },
      el("div", { class: "topic-head" },
        el("strong", {}, topic.name),
        el("span", {}, `${topic.partitions.length} partitions`),
        sparkline(perSecond.slice(-120)),
        el("span", { "data-rate": rate.toFixed(1) }, `${rate.toFixed(1)} events/s`)),
      el("div", { class: "partitions" }, topic.partitions.map((p) => {
        const under = p.isr.length < p.replicas.length;
        return el("span", {
          class: `partition${p.leader < 0 ? " no-leader" : ""}${under ? " under-replicated" : ""}`,
          "data-partition": p.partition, "data-leader": p.leader, title: `replicas ${p.replicas.join(",")}${p.error ? " — " + p.error : ""}`,
        }, `${p.partition}: L${p.leader < 0 ? "–" : p.leader} · isr ${p.isr.join(",") || "–"} · end ${p.endOffset ?? "?"}`);
      })));
  }));
}

function renderMember(m) {
  const partitions = m.idle
    ? el("span", { class: "idle" }, "idle: more members than partitions")
    : m.partitions.map((p) => el("div", { "data-topic-partition": `${p.topic}/${p.partition}` },
        `${p.topic}/${p.partition} ${p.committed ?? "–"} → `,
        el("span", { class: p.lag > 0 ? "lag" : "" }, `lag ${p.lag ?? "?"}`)));
  return el("div", { class: "member", "data-member": m.clientId, "data-partitions": m.partitions.length },
    el("div", {}, el("strong", {}, m.clientId), " ", el("small", {}, m.host.replace(/^\//, ""))), partitions);
}

function renderGroups(groups) {
  $("groups").replaceChildren(...groups.map((g) =>
    el("div", { class: "card group", "data-group": g.groupId, "data-members": g.members.length },
      el("strong", {}, g.groupId), " ", el("small", {}, `${g.state} · lag ${g.totalLag}`),
      g.members.length === 0 ? el("div", { class: "member" }, el("span", { class: "idle" }, "no live member")) : null,
      g.members.map(renderMember))));
}

function renderRebalances(rebalances) {
  const describe = (assignment) => Object.entries(assignment).map(([member, parts]) => el("div", { class: "assign" }, `${member}: ${parts}`));
  $("rebalances").replaceChildren(...(rebalances.length === 0
    ? [el("li", { class: "idle" }, "none since this page's service started")]
    : rebalances.map((r) =>
      el("li", { "data-group": r.groupId, "data-members-after": Object.keys(r.after).length },
        el("strong", {}, `${time(r.at)} ${r.groupId}`), " ",
        r.joined.length ? `joined: ${r.joined.join(", ")} ` : "",
        r.left.length ? `left: ${r.left.join(", ")}` : "",
        el("div", {}, "before:"), describe(r.before),
        el("div", {}, "after:"), describe(r.after)))));
}

function renderFunnel(funnel) {
  const stages = [["placed", funnel.placed], ["reserved", funnel.reserved], ["paid", funnel.paid], ["confirmed", funnel.confirmed], ["cancelled", funnel.cancelled]];
  const max = Math.max(1, funnel.placed);
  $("funnel").replaceChildren(...stages.map(([stage, count]) =>
    el("div", { class: "funnel-row", "data-stage": stage, "data-count": count },
      el("span", {}, stage),
      el("div", {}, el("div", { class: `bar ${stage}`, style: `width:${(100 * count / max).toFixed(1)}%` })),
      el("span", {}, count))));
}

let newestTailOffset = null;
function renderTail(tail) {
  const newest = tail.length ? `${tail[0].topic}/${tail[0].partition}@${tail[0].offset}` : null;
  // Every event of an order is keyed by its id (the catalog's by ISBN): a click shows its journey.
  const rows = tail.map((e) => el("tr", { "data-key": e.key, "data-type": e.type, "data-topic": e.topic, "data-order": e.key && !e.type.startsWith("bookstore.catalog.") ? e.key : null, title: e.key && !e.type.startsWith("bookstore.catalog.") ? "show this order's journey" : null },
    el("td", {}, time(e.at)),
    el("td", {}, `${e.topic}/${e.partition}@${e.offset}`),
    el("td", {}, e.key ?? "–"),
    el("td", {}, shortType(e.type)),
    el("td", {}, e.source)));
  if (newest !== newestTailOffset && rows.length) rows[0].classList.add("fresh");
  newestTailOffset = newest;
  $("tail").tBodies[0].replaceChildren(...rows);
}

function renderProblems(problems) {
  $("problem-counts").textContent = `${problems.deadLetters} dead letter(s), ${problems.parkedRows} parked outbox row(s) since this page's service started`;
  $("problems").tBodies[0].replaceChildren(...problems.recent.map((p) =>
    el("tr", { "data-kind": p.kind, class: p.kind === "outbox row parked" ? "parked" : null },
      el("td", {}, time(p.at)),
      el("td", {}, p.kind),
      el("td", {}, p.who),
      el("td", {}, p.where),
      el("td", {}, p.key ?? "–"),
      el("td", {}, p.error.length > 200 ? `${p.error.slice(0, 200)}…` : p.error))));
}

function renderBurst(burst) {
  if (!burst) return;
  $("start-burst").disabled = burst.running;
  $("start-burst").textContent = burst.running ? `Burst: ${burst.accepted + burst.failed}/${burst.requested}` : "Start burst";
}

// The next refresh is scheduled when this one has finished: slow answers never overlap.
async function refresh() {
  try {
    const response = await fetch("dashboard/state", { cache: "no-store" });
    if (!response.ok) throw new Error(`${response.status}`);
    const state = await response.json();
    renderBrokers(state.cluster.brokers);
    renderTopics(state.cluster.topics, state.throughput);
    renderGroups(state.cluster.groups);
    renderRebalances(state.cluster.rebalances);
    renderFunnel(state.funnel);
    renderTail(state.tail);
    renderProblems(state.problems);
    renderBurst(state.burst);
    $("updated").textContent = state.cluster.error ? `cluster: ${state.cluster.error}` : `updated ${time(state.cluster.at)}`;
  } catch (error) {
    $("updated").textContent = `no answer from the service (${error.message})`;
  } finally {
    setTimeout(refresh, 1000);
  }
}

// Retried until the catalog has been read from book-catalog-updates.
async function loadBooks() {
  let books = [];
  try {
    books = await (await fetch("dashboard/books", { cache: "no-store" })).json();
  } catch {
    books = [];
  }
  if (books.length === 0) {
    setTimeout(loadBooks, 1000);
    return;
  }
  $("isbn").replaceChildren(...books.map((b) => el("option", { value: b.isbn }, `${b.title} (${b.isbn}) — ${b.price.toFixed(2)}, ${b.available} left`)));
}

function problemText(body) {
  if (body.errors) return Object.entries(body.errors).map(([field, messages]) => `${field}: ${messages.join(" ")}`).join("; ");
  return body.detail ?? body.title ?? JSON.stringify(body);
}

$("order-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("order-result");
  const response = await fetch("dashboard/orders", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ isbn: $("isbn").value, quantity: Number($("quantity").value), customerId: $("customer").value }),
  });
  const body = await response.json();
  if (response.ok) {
    result.replaceChildren("Placed ", el("strong", { "data-order-id": body.id }, body.id), ` (${body.status}): watch its events in the tail and its journey below.`);
    showJourney(body.id);
  } else {
    result.replaceChildren(el("span", { class: "down" }, `${response.status}: ${problemText(body)}`));
  }
});

// The admin key: typed in by the user when a burst needs it and kept for this tab only
// (sessionStorage), never written into the page or sent anywhere but the X-Api-Key header.
const adminKeyStorage = "bookstore-admin-key";

function askForAdminKey(message) {
  sessionStorage.removeItem(adminKeyStorage);
  $("admin-key-field").hidden = false;
  $("admin-key").value = "";
  $("admin-key").focus();
  $("order-result").replaceChildren(el("span", { class: "down", "data-admin-key-needed": true }, message));
}

$("burst-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const typed = $("admin-key").value.trim();
  const key = typed || sessionStorage.getItem(adminKeyStorage);
  if (!key) {
    askForAdminKey("A burst needs the admin key (./bookstore up wrote it to .bookstore/admin-key): enter it and start again.");
    return;
  }
  const response = await fetch("dashboard/burst", {
    method: "POST",
    headers: { "content-type": "application/json", "X-Api-Key": key },
    body: JSON.stringify({ orders: Number($("burst-size").value) }),
  });
  if (response.status === 401 || response.status === 403) {
    askForAdminKey(`${response.status}: ${problemText(await response.json())}`);
    return;
  }
  sessionStorage.setItem(adminKeyStorage, key);
  $("admin-key").value = "";
  $("admin-key-field").hidden = true;
  if (response.ok) $("order-result").replaceChildren(`Burst of ${$("burst-size").value} orders started.`);
  else $("order-result").replaceChildren(el("span", { class: "down" }, problemText(await response.json())));
});

// An order's journey: one row per hop (a service handling one of its events), the steps as bars
// on one time axis from placement, each placed by its recorded start; grey where a boundary is missing.
const stepNames = {
  "queued-in-outbox": "queued in the outbox",
  "in-kafka": "in Kafka until fetched",
  "handling": "handling",
  "waiting-for-worker": "waiting for the worker",
  "external-call": "external call",
};
const stepStarts = {
  "queued-in-outbox": "writtenAt",
  "in-kafka": "publishedAt",
  "handling": "fetchedAt",
  "waiting-for-worker": "workQueuedAt",
  "external-call": "workStartedAt",
};
const milliseconds = (value) => value === null || value === undefined ? "–" : `${value.toFixed(1)} ms`;
// The services' clocks to the microsecond, in UTC as recorded: a hop takes milliseconds.
const preciseTime = (iso) => iso ? `${iso.slice(11, 26)} UTC` : "not recorded";

function renderJourney(journey) {
  const times = journey.hops.flatMap((h) => [Date.parse(h.writtenAt), Date.parse(h.handledAt)]);
  if (journey.placedAt) times.push(Date.parse(journey.placedAt));
  if (journey.terminalAt) times.push(Date.parse(journey.terminalAt));
  const start = Math.min(...times);
  const span = Math.max(1, Math.max(...times) - start);
  const left = (iso) => `${(100 * (Date.parse(iso) - start) / span).toFixed(3)}%`;
  const width = (ms) => `${(100 * ms / span).toFixed(3)}%`;

  const summary = el("p", { class: "summary" },
    el("strong", {}, journey.orderId), " ",
    journey.terminal ? shortType(journey.terminal) : "not terminal yet",
    journey.placedToTerminalMs !== null ? `: placed → terminal ${milliseconds(journey.placedToTerminalMs)}; the critical path's steps add up to ${milliseconds(journey.pathSumMs)}` : "",
    journey.traceId ? ` · trace ${journey.traceId}` : "");
  const gap = journey.pathGap ? el("p", { class: "gap" }, `Critical path incomplete: ${journey.pathGap}.`) : null;
  const legend = el("div", { class: "legend" },
    Object.entries(stepNames).map(([step, name]) => el("span", {}, el("span", { class: `swatch step-${step}` }), name)),
    el("span", {}, el("span", { class: "swatch untimed" }), "not timed"));
  const hops = journey.hops.map((h) => {
    const timed = h.steps.filter((s) => s.ms !== null && h[stepStarts[s.step]]);
    return el("div", { class: `hop ${h.onCriticalPath ? "on-path" : "side"}`, "data-hop": h.service, "data-event-type": h.eventType, "data-on-path": String(h.onCriticalPath) },
      el("div", {
        class: "label",
        title: `${h.service} handling ${shortType(h.eventType)} (${h.topic}/${h.partition}@${h.offset}), which wrote ${shortType(h.wrote)}: written ${preciseTime(h.writtenAt)}, published ${preciseTime(h.publishedAt)}, fetched ${preciseTime(h.fetchedAt)}${h.workQueuedAt ? `, work queued ${preciseTime(h.workQueuedAt)}, started ${preciseTime(h.workStartedAt)}` : ""}, handled ${preciseTime(h.handledAt)}`,
      },
        h.onCriticalPath ? "★ " : "", el("strong", {}, h.service), ` ${shortType(h.eventType)} → ${shortType(h.wrote)} `,
        el("small", {}, `${h.topic}/${h.partition}@${h.offset}`)),
      el("div", { class: "track" },
        el("div", { class: "segment untimed", style: `left:${left(h.writtenAt)};width:${width(h.totalMs)}`, title: `${milliseconds(h.totalMs)} in all` }),
        timed.map((s) => el("div", {
          class: `segment step-${s.step}`, "data-step": s.step, "data-ms": s.ms,
          style: `left:${left(h[stepStarts[s.step]])};width:${width(s.ms)}`, title: `${stepNames[s.step]}: ${milliseconds(s.ms)}`,
        }))),
      el("div", { class: "total", title: h.steps.map((s) => `${stepNames[s.step]} ${milliseconds(s.ms)}`).join(", ") }, milliseconds(h.totalMs)));
  });
  const journeyView = $("journey");
  journeyView.dataset.orderId = journey.orderId;
  journeyView.dataset.terminal = journey.terminal ?? "";
  journeyView.dataset.hops = journey.hops.length;
  journeyView.dataset.pathComplete = String(journey.pathComplete);
  journeyView.replaceChildren(summary, gap ?? "", legend,
    hops.length ? el("div", {}, hops) : el("p", { class: "gap" }, "No hop yet: no event of this order names a recorded cause."));
}

// Shown until it settles: an order just placed is still on its way, and its emails come last.
let journeyTimer = null;
let journeyShown = null;
async function showJourney(orderId, round = 0) {
  clearTimeout(journeyTimer);
  journeyShown = orderId;
  // Only when asked, not on every refresh: a refresh must not overwrite an id being typed in.
  if (round === 0) $("journey-order").value = orderId;
  let response, body;
  try {
    response = await fetch(`analytics/orders/${encodeURIComponent(orderId)}/journey`, { cache: "no-store" });
    body = await response.json();
  } catch (error) {
    if (journeyShown === orderId) $("journey").replaceChildren(el("p", { class: "down" }, `no answer from the service (${error.message})`));
    return;
  }
  if (journeyShown !== orderId) return; // another order was asked for meanwhile
  if (!response.ok) {
    const journeyView = $("journey");
    delete journeyView.dataset.orderId;
    journeyView.replaceChildren(el("p", { class: "down", "data-journey-error": response.status }, `${response.status}: ${problemText(body)}`));
    if (response.status === 404 && round < 10) journeyTimer = setTimeout(() => showJourney(orderId, round + 1), 1000);
    return;
  }
  renderJourney(body);
  const settled = body.terminal !== null && body.pathComplete;
  if (round < (settled ? 10 : 120)) journeyTimer = setTimeout(() => showJourney(orderId, round + 1), 1000);
}

$("journey-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showJourney($("journey-order").value.trim());
});

// On the table, not the rows: the tail is redrawn every second.
$("tail").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-order]");
  if (row) showJourney(row.dataset.order);
});

loadBooks();
refresh();
