// Webhooks: register an endpoint (its signing secret shown once), the endpoints with their status,
// enable, disable and delete, each endpoint's recent delivery attempts with a Redeliver button.
// The secret lives only in the one element that shows it, until the user hides it: never in a
// variable kept by this module, never in storage, never in the console log.
import { api, ApiError, Unreachable } from "./api.js";
import { $, announce, h, showErrors, submitOnce, when } from "./dom.js";
import { Poller } from "./poll.js";

const ENDPOINTS_SHOWN = 20;
const DELIVERIES_SHOWN = 10;
const FIELDS = ["url", "events", "description"];

const path = (...parts) => `/webhook-endpoints/${parts.map(encodeURIComponent).join("/")}`;

/** "the URL must use https" as a sentence: "The URL must use https." */
function sentence(text) {
  const trimmed = String(text || "").trim();
  if (!trimmed) return "";
  return trimmed[0].toUpperCase() + trimmed.slice(1) + (/[.!?]$/.test(trimmed) ? "" : ".");
}

/** The form's values as the API body, or the errors by field name. The event types are left to
 * the API, which answers an unknown one with the list of valid ones. */
export function readEndpointForm(form) {
  const url = form.elements.url.value.trim();
  const events = [...new Set(form.elements.events.value.split(/[\s,]+/).filter(Boolean))];
  const description = form.elements.description.value.trim();
  if (!url) return { errors: { url: "Enter the endpoint URL." } };
  return { body: { url, ...(events.length ? { events } : {}), ...(description ? { description } : {}) } };
}

/** A 400 problem's field errors keyed by the form's fields (``events.1`` is the second type sent). */
export function fieldErrors(problem, sent) {
  const fields = {};
  for (const error of problem.errors || []) {
    const [name, index] = String(error.field || "").split(".");
    if (!FIELDS.includes(name) || fields[name]) continue;
    const entry = name === "events" && index !== undefined ? sent?.events?.[Number(index)] : undefined;
    fields[name] = entry === undefined ? sentence(error.message) : `“${entry}” is not an event type. ${sentence(error.message)}`;
  }
  return fields;
}

/** The fallback where navigator.clipboard is missing or refuses (an insecure context, an old
 * browser): select the secret and ask the browser to copy the selection. */
function copyBySelection(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  if (copied) selection.removeAllRanges(); // otherwise the selection stays, ready for Ctrl+C
  return copied;
}

export class Webhooks {
  constructor() {
    this.form = $("#endpoint-form");
    this.formStatus = $("#endpoint-form-status");
    this.secretBox = $("#endpoint-secret");
    this.secretValue = $("#endpoint-secret-value");
    this.secretStatus = $("#endpoint-secret-status");
    this.list = $("#endpoints");
    this.empty = $("#endpoints-empty");
    this.status = $("#endpoints-status");
    this.endpoints = [];
    this.deliveries = new Map(); // endpoint id -> its newest attempts
    this.notes = new Map(); // endpoint id -> the outcome of the last action on it
    this.awaiting = new Map(); // "endpoint event" -> the attempts known when its redelivery was asked
    this.snapshot = "";
    this.poller = new Poller(() => this.refresh(), { min: 2000, max: 15000 });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.add();
    });
    $("#endpoint-secret-copy").addEventListener("click", () => this.copySecret());
    $("#endpoint-secret-hide").addEventListener("click", () => {
      this.hideSecret();
      this.form.elements.url.focus();
    });
  }

  start() {
    this.poller.start();
  }

  stop() {
    this.poller.stop();
    this.hideSecret();
    this.endpoints = [];
    this.deliveries.clear();
    this.notes.clear();
    this.awaiting.clear();
    this.snapshot = "";
    this.render();
  }

  add() {
    return submitOnce(this.form, this.formStatus, readEndpointForm, (body) => this.post(body));
  }

  async post(body) {
    this.formStatus.textContent = "Adding…";
    try {
      const { body: created } = await api("POST", "/webhook-endpoints", { body });
      const { secret, ...endpoint } = created;
      this.showSecret(endpoint.url, secret);
      this.form.reset();
      this.endpoints = [endpoint, ...this.endpoints.filter((known) => known.id !== endpoint.id)];
      this.render();
      this.formStatus.textContent = `Endpoint ${endpoint.url} added.`;
      announce(`${this.formStatus.textContent} Copy its signing secret now: it is shown only once.`);
      this.poller.now();
    } catch (error) {
      if (error instanceof Unreachable) {
        // Registering is not idempotent: say so rather than invite a second endpoint.
        this.formStatus.textContent = "The API did not answer, so the endpoint may or may not exist: check the list below before adding it again.";
        this.poller.now();
      } else if (error instanceof ApiError) {
        const fields = fieldErrors(error.problem, body);
        showErrors(this.form, fields);
        this.formStatus.textContent = `The endpoint was not added. ${sentence(error.message)}`;
      } else {
        throw error;
      }
      announce(this.formStatus.textContent);
    }
  }

  showSecret(url, secret) {
    $("#endpoint-secret-url").textContent = url;
    this.secretValue.textContent = secret;
    this.secretStatus.textContent = "";
    this.secretBox.hidden = false;
    $("#endpoint-secret-copy").focus();
  }

  hideSecret() {
    $("#endpoint-secret-url").textContent = "";
    this.secretValue.textContent = "";
    this.secretStatus.textContent = "";
    this.secretBox.hidden = true;
  }

  async copySecret() {
    const secret = this.secretValue.textContent;
    if (!secret) return;
    let copied = false;
    if (navigator.clipboard?.writeText) {
      try {
        await navigator.clipboard.writeText(secret);
        copied = true;
      } catch {
        copied = false;
      }
    }
    if (!copied) copied = copyBySelection(this.secretValue);
    this.secretStatus.textContent = copied
      ? "Secret copied to the clipboard."
      : "The browser did not copy it: the secret is selected, press Ctrl+C (⌘C on a Mac).";
    announce(this.secretStatus.textContent);
  }

  /** A poll: the endpoints and each one's newest attempts; true when anything changed. */
  async refresh() {
    const { body } = await api("GET", `/webhook-endpoints?limit=${ENDPOINTS_SHOWN}`);
    const pairs = await Promise.all(
      body.items.map(async (endpoint) => {
        try {
          return [endpoint.id, (await api("GET", `${path(endpoint.id, "deliveries")}?limit=${DELIVERIES_SHOWN}`)).body.items];
        } catch (error) {
          if (error instanceof ApiError && error.status === 404) return [endpoint.id, []]; // deleted meanwhile
          throw error;
        }
      }),
    );
    const deliveries = new Map(pairs);
    let changed = this.settleRedeliveries(deliveries);
    const snapshot = JSON.stringify([body.items, pairs]);
    changed = changed || snapshot !== this.snapshot;
    this.snapshot = snapshot;
    this.endpoints = body.items;
    this.deliveries = deliveries;
    if (changed) this.render();
    return changed;
  }

  /** Say how each redelivery we asked for went, once its attempt is listed. */
  settleRedeliveries(deliveries) {
    let settled = false;
    for (const [key, wait] of this.awaiting) {
      const fresh = (deliveries.get(wait.endpointId) || []).find((a) => a.event_id === wait.eventId && !wait.known.has(a.id));
      if (!fresh) continue;
      this.awaiting.delete(key);
      const code = fresh.status_code === null ? fresh.error : `HTTP ${fresh.status_code}`;
      this.notes.set(wait.endpointId, `Redelivered ${fresh.event_type}: ${fresh.outcome} (${code}).`);
      announce(this.notes.get(wait.endpointId));
      settled = true;
    }
    return settled;
  }

  note(endpointId, text) {
    this.notes.set(endpointId, text);
    announce(text);
    this.render();
  }

  async act(button, work, failure) {
    // aria-disabled rather than disabled: a disabled button drops keyboard focus.
    if (button.getAttribute("aria-disabled") === "true") return;
    button.setAttribute("aria-disabled", "true");
    try {
      await work();
    } catch (error) {
      if (!(error instanceof ApiError || error instanceof Unreachable)) throw error;
      failure(error);
    } finally {
      button.removeAttribute("aria-disabled");
    }
  }

  setStatus(endpoint, status, button) {
    return this.act(
      button,
      async () => {
        const { body: updated } = await api("PATCH", path(endpoint.id), { body: { status } });
        this.endpoints = this.endpoints.map((known) => (known.id === updated.id ? updated : known));
        this.note(endpoint.id, status === "enabled" ? "Endpoint enabled: it receives events again." : "Endpoint disabled: it receives no events until enabled.");
      },
      (error) => this.note(endpoint.id, `Could not change the endpoint: ${error.message}`),
    );
  }

  remove(endpoint, button) {
    if (!window.confirm(`Delete the webhook endpoint ${endpoint.url}? It will receive no more events.`)) return null;
    return this.act(
      button,
      async () => {
        await api("DELETE", path(endpoint.id));
        this.endpoints = this.endpoints.filter((known) => known.id !== endpoint.id);
        this.deliveries.delete(endpoint.id);
        this.notes.delete(endpoint.id);
        this.render();
        this.status.textContent = `Endpoint ${endpoint.url} deleted.`;
        announce(this.status.textContent);
        $("#webhooks-title").focus();
      },
      (error) => this.note(endpoint.id, `Could not delete the endpoint: ${error.message}`),
    );
  }

  redeliver(endpoint, attempt, button) {
    return this.act(
      button,
      async () => {
        await api("POST", path(endpoint.id, "events", attempt.event_id, "redeliver"));
        const known = new Set((this.deliveries.get(endpoint.id) || []).map((a) => a.id));
        this.awaiting.set(`${endpoint.id} ${attempt.event_id}`, { endpointId: endpoint.id, eventId: attempt.event_id, known });
        this.note(endpoint.id, `Redelivery of ${attempt.event_type} queued; its attempt appears below.`);
        this.poller.now();
      },
      (error) => this.note(endpoint.id, `Could not redeliver ${attempt.event_type}: ${error.message}`),
    );
  }

  render() {
    // Re-rendering must not steal keyboard focus from a button in the list.
    const focused = document.activeElement?.dataset?.focusKey;
    const items = this.endpoints.map((endpoint) => this.endpointItem(endpoint));
    this.list.replaceChildren(...items);
    if (focused) this.list.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
    this.empty.hidden = items.length > 0;
  }

  endpointItem(endpoint) {
    const enabled = endpoint.status === "enabled";
    const attempts = this.deliveries.get(endpoint.id) || [];
    const button = (label, key, action) =>
      h("button", { type: "button", class: "secondary", dataset: { focusKey: `${key} ${endpoint.id}` }, onclick: (event) => action(event.currentTarget) }, label);
    return h(
      "li",
      { class: "connection endpoint", dataset: { endpointId: endpoint.id, status: endpoint.status } },
      h("div", {}, h("strong", { class: "endpoint-url" }, endpoint.url), " ", h("span", { class: `badge badge-${endpoint.status} endpoint-status` }, endpoint.status)),
      endpoint.description ? h("div", { class: "endpoint-description" }, endpoint.description) : null,
      endpoint.disabled_reason ? h("div", { class: "failure disabled-reason" }, endpoint.disabled_reason) : null,
      h("div", { class: "muted" }, `Events: ${endpoint.events.join(", ")}`),
      h(
        "div",
        { class: "actions" },
        button(enabled ? "Disable endpoint" : "Enable endpoint", "toggle", (b) => this.setStatus(endpoint, enabled ? "disabled" : "enabled", b)),
        button("Delete endpoint", "delete", (b) => this.remove(endpoint, b)),
      ),
      h("p", { class: "endpoint-note", role: "status" }, this.notes.get(endpoint.id) || ""),
      attempts.length ? this.deliveriesTable(endpoint, attempts) : h("p", { class: "muted deliveries-empty" }, "No deliveries yet."),
    );
  }

  deliveriesTable(endpoint, attempts) {
    const headings = ["When", "Event", "Attempt", "Outcome", "Response code", ""];
    const rows = attempts.map((a) =>
      h(
        "tr",
        { dataset: { deliveryId: a.id, eventId: a.event_id, outcome: a.outcome } },
        h("td", {}, h("time", { datetime: a.created_at }, when(a.created_at))),
        h("td", { class: "event-type" }, a.event_type, h("div", { class: "muted" }, a.event_id)),
        h("td", { class: "num attempt" }, String(a.attempt)),
        h(
          "td",
          {},
          h("span", { class: `badge badge-${a.outcome}` }, a.outcome),
          a.next_attempt_at ? h("div", { class: "muted" }, `Next try ${when(a.next_attempt_at)}`) : null,
        ),
        h("td", { class: "status-code" }, a.status_code === null ? "none" : String(a.status_code), a.error ? h("div", { class: "failure" }, a.error) : null),
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              "aria-label": `Redeliver ${a.event_type} (${a.event_id})`,
              dataset: { focusKey: `redeliver ${a.id}` },
              onclick: (event) => this.redeliver(endpoint, a, event.currentTarget),
            },
            "Redeliver",
          ),
        ),
      ),
    );
    return h(
      "table",
      { class: "deliveries" },
      h("caption", { class: "visually-hidden" }, `Recent deliveries to ${endpoint.url}, newest first`),
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows),
    );
  }
}
