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
  const rows = tail.map((e) => el("tr", { "data-key": e.key, "data-type": e.type, "data-topic": e.topic },
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
    result.replaceChildren("Placed ", el("strong", { "data-order-id": body.id }, body.id), ` (${body.status}): watch its events in the tail.`);
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

loadBooks();
refresh();
