// Bank connections: link the (sandbox) bank, sync on demand, the last sync summary, transactions.
import { api, ApiError, Unreachable } from "./api.js";
import { $, announce, h, when } from "./dom.js";
import { formatMoney } from "./money.js";
import { Poller } from "./poll.js";

const PAGE_SIZE = 50;

function summary(sync) {
  if (!sync) return "Not synced yet.";
  const pages = `${sync.pages} page${sync.pages === 1 ? "" : "s"}`;
  return `Last sync ${sync.status} at ${when(sync.finished_at)}: ${sync.inserted} new, ${sync.updated} updated, ` +
    `${sync.unchanged} unchanged, ${sync.removed} removed (${pages}).`;
}

export class Bank {
  constructor(user) {
    this.user = user;
    this.list = $("#connections");
    this.rows = $("#transaction-rows");
    this.more = $("#transactions-more");
    this.status = $("#bank-status");
    this.connections = [];
    this.cursor = null;
    this.waiting = new Map(); // connection id -> finished_at of the sync before the one we asked for
    this.poller = new Poller(() => this.checkSyncs(), { min: 1000, max: 10000 });
    $("#bank-link").addEventListener("click", () => this.link());
    this.more.addEventListener("click", () => this.loadTransactions(true));
  }

  setUser(user) {
    this.user = user;
  }

  async start() {
    await this.loadConnections();
    await this.loadTransactions(false);
  }

  stop() {
    this.poller.stop();
    this.waiting.clear();
  }

  link() {
    // A top-level navigation: the bank's consent page, then back here through /bank/callback.
    const query = new URLSearchParams({ redirect_to: "/" });
    if (this.user?.email) query.set("login_hint", this.user.email);
    window.location.assign(`/bank/connect?${query}`);
  }

  async loadConnections() {
    const { body } = await api("GET", "/bank/connections?limit=100");
    this.connections = body.items;
    this.renderConnections();
    return body.items;
  }

  async sync(connection, button) {
    // aria-disabled rather than disabled: a disabled button drops keyboard focus.
    if (this.waiting.has(connection.id) || button.getAttribute("aria-disabled") === "true") return;
    button.setAttribute("aria-disabled", "true");
    try {
      await api("POST", `/bank/connections/${encodeURIComponent(connection.id)}/sync`);
      this.waiting.set(connection.id, connection.last_sync?.finished_at ?? null);
      this.status.textContent = `Syncing ${connection.institution}…`;
      announce(this.status.textContent);
      this.poller.start();
    } catch (error) {
      if (!(error instanceof ApiError || error instanceof Unreachable)) throw error;
      this.status.textContent = `Could not start the sync: ${error.message}`;
      announce(this.status.textContent);
      button.removeAttribute("aria-disabled");
    }
  }

  /** A poll while a sync we asked for is running: done once its summary is newer. */
  async checkSyncs() {
    const connections = await this.loadConnections();
    let finished = false;
    for (const connection of connections) {
      if (!this.waiting.has(connection.id)) continue;
      const finishedAt = connection.last_sync?.finished_at ?? null;
      if (finishedAt && finishedAt !== this.waiting.get(connection.id)) {
        this.waiting.delete(connection.id);
        this.status.textContent = `Sync of ${connection.institution} finished.`;
        announce(`Sync finished. ${summary(connection.last_sync)}`);
        finished = true;
      }
    }
    if (finished) await this.loadTransactions(false);
    if (this.waiting.size === 0) this.poller.stop();
    this.renderConnections();
    return finished;
  }

  async loadTransactions(append) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (append && this.cursor) query.set("cursor", this.cursor);
    const { body } = await api("GET", `/bank/transactions?${query}`);
    const rows = body.items.map((t) =>
      h(
        "tr",
        { dataset: { transactionId: t.id } },
        h("td", {}, t.date),
        h("td", {}, t.description, t.pending ? h("span", { class: "badge badge-pending" }, "pending") : null),
        h("td", { class: "num" }, formatMoney(t.amount, t.currency)),
      ),
    );
    if (append) this.rows.append(...rows);
    else this.rows.replaceChildren(...rows);
    this.cursor = body.next_cursor;
    this.more.hidden = !this.cursor;
    $("#transactions-empty").hidden = this.rows.children.length > 0;
    $("#transactions-count").textContent = `${this.rows.children.length} shown`;
  }

  renderConnections() {
    // Re-rendering must not steal keyboard focus from a connection's button.
    const focused = document.activeElement?.closest?.("[data-connection-id]")?.dataset.connectionId;
    const items = this.connections.map((c) => {
      const syncing = this.waiting.has(c.id);
      const button = h("button", { type: "button", class: "secondary", "aria-describedby": `sync-${c.id}` }, syncing ? "Syncing…" : "Sync now");
      if (syncing) button.setAttribute("aria-disabled", "true");
      button.addEventListener("click", () => this.sync(c, button));
      const accounts = c.accounts.map((a) => `${a.name} (${a.currency})`).join(", ") || "no accounts";
      return h(
        "li",
        { class: "connection", dataset: { connectionId: c.id } },
        h("div", {}, h("strong", {}, c.institution), " ", h("span", { class: `badge badge-${c.status === "active" ? "paid" : "failed"}` }, c.status)),
        h("div", { class: "muted" }, accounts),
        h("div", { id: `sync-${c.id}`, class: "sync-summary" }, summary(c.last_sync)),
        button,
      );
    });
    this.list.replaceChildren(...items);
    if (focused) this.list.querySelector(`[data-connection-id="${CSS.escape(focused)}"] button`)?.focus();
    $("#connections-empty").hidden = items.length > 0;
  }
}
