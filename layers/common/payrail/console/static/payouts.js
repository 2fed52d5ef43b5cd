// The payout form and the payout list.
import { api, ApiError, Unreachable } from "./api.js";
import { insufficientFunds } from "./balances.js";
import { $, announce, h, showErrors, submitOnce, when } from "./dom.js";
import { CURRENCIES, formatMoney, parseAmount } from "./money.js";
import { Poller } from "./poll.js";

const FINAL = new Set(["paid", "failed"]);
const PAGE_SIZE = 10;
// Control (Cc) and invisible format (Cf) characters, as the API refuses them.
const CONTROL = /[\p{Cc}\p{Cf}\u2028\u2029]/u;

// The API's rules, field by field (payrail.payouts.models).
function text(label, max) {
  return (value) => {
    if (value.length === 0) return `Enter the ${label}.`;
    if (value.length > max) return `The ${label} must be at most ${max} characters.`;
    if (CONTROL.test(value)) return `The ${label} must not contain control or invisible formatting characters.`;
    return null;
  };
}
const pattern = (regex, message) => (value) => (regex.test(value) ? null : message);
const RULES = {
  "beneficiary.name": text("beneficiary's name", 140),
  "beneficiary.account_number": pattern(/^[A-Za-z0-9]{4,34}$/, "4 to 34 letters or digits, no spaces."),
  "beneficiary.bank_code": pattern(/^[A-Za-z0-9]{2,11}$/, "2 to 11 letters or digits (branch code, sort code or BIC)."),
  reference: text("reference", 140),
};

/** The form's values as the API body, or the errors by field name. */
export function readForm(form) {
  const value = (name) => form.elements[name].value.trim();
  const errors = {};
  const currency = value("currency");
  if (!CURRENCIES.includes(currency)) errors.currency = "Choose a currency.";
  const amount = parseAmount(value("amount"), currency);
  if (!amount.ok) errors.amount = amount.error;
  for (const [name, rule] of Object.entries(RULES)) {
    const problem = rule(value(name));
    if (problem) errors[name] = problem;
  }
  if (Object.keys(errors).length) return { errors };
  return {
    body: {
      amount: amount.minor,
      currency,
      beneficiary: {
        name: value("beneficiary.name"),
        account_number: value("beneficiary.account_number"),
        bank_code: value("beneficiary.bank_code"),
      },
      reference: value("reference"),
    },
  };
}

function badge(status) {
  return h("span", { class: `badge badge-${status}` }, status);
}

export class Payouts {
  constructor(balances = null) {
    this.balances = balances;
    this.form = $("#payout-form");
    this.formStatus = $("#payout-form-status");
    this.rows = $("#payout-rows");
    this.more = $("#payouts-more");
    this.empty = $("#payouts-empty");
    this.byId = new Map();
    this.order = [];
    this.cursor = null;
    this.attempt = null; // {body, key}: kept until the API has answered that submission
    this.poller = new Poller(() => this.refresh(), { min: 1000, max: 15000 });

    this.form.elements.currency.append(...CURRENCIES.map((code) => h("option", { value: code }, code)));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.more.addEventListener("click", () => this.loadMore());
  }

  async start() {
    this.byId.clear();
    this.order = [];
    this.cursor = null;
    try {
      await this.loadMore();
    } finally {
      this.poller.start(); // also after a failed first load: the poll retries it with backoff
    }
  }

  stop() {
    this.poller.stop();
  }

  /** One submission; a double click lands here twice, but the second finds it in flight. */
  send() {
    return submitOnce(this.form, this.formStatus, readForm, (body) => this.post(body));
  }

  async post(body) {
    // The same payout again after an unanswered attempt keeps its key, so the API can tell it
    // is a retry; anything different is a new payout with a new key.
    const same = this.attempt && JSON.stringify(this.attempt.body) === JSON.stringify(body);
    if (!same) this.attempt = { body, key: crypto.randomUUID() };
    this.formStatus.textContent = same ? "Retrying the same payout…" : "Sending…";
    try {
      const { body: payout, headers } = await api("POST", "/payouts", {
        body,
        headers: { "Idempotency-Key": this.attempt.key },
      });
      this.attempt = null;
      this.upsert(payout, true);
      this.render();
      const replayed = headers.get("Idempotent-Replayed") === "true" ? " (it had already been created)" : "";
      this.formStatus.textContent = `Payout of ${formatMoney(payout.amount, payout.currency)} to ${payout.beneficiary.name} created${replayed}.`;
      announce(this.formStatus.textContent);
      this.form.reset();
      this.form.elements.currency.value = body.currency;
      this.poller.now();
      this.balances?.refresh().catch(() => {});
    } catch (error) {
      if (error instanceof Unreachable) {
        this.formStatus.textContent = "The API did not answer, so the payout may or may not exist. Send again: the retry is safe and cannot create a second payout.";
      } else if (error instanceof ApiError) {
        if (error.status !== 429 && error.status < 500) this.attempt = null;
        const fields = Object.fromEntries((error.problem.errors || []).map((e) => [e.field, e.message]));
        const short = insufficientFunds(error.problem);
        if (short) fields.amount = short;
        showErrors(this.form, fields);
        const wait = error.status === 429 ? ` Try again in ${error.problem.retry_after ?? "a few"} seconds.` : "";
        this.formStatus.textContent = `${error.message}${wait}`;
      } else {
        throw error;
      }
      announce(this.formStatus.textContent);
    }
  }

  /** Remember a payout; say so when its status moved. Returns whether anything changed. */
  upsert(payout, fresh = false) {
    const known = this.byId.get(payout.id);
    this.byId.set(payout.id, payout);
    if (!known) {
      if (fresh) this.order.unshift(payout.id);
      else this.order.push(payout.id);
      return true;
    }
    if (known.status !== payout.status) {
      const reason = payout.failure_reason ? `: ${payout.failure_reason}` : "";
      announce(`Payout ${payout.reference} to ${payout.beneficiary.name} is now ${payout.status}${reason}.`);
      return true;
    }
    return false;
  }

  async loadMore() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (this.cursor) query.set("cursor", this.cursor);
    this.more.disabled = true;
    try {
      const { body } = await api("GET", `/payouts?${query}`);
      for (const payout of body.items) this.upsert(payout);
      this.cursor = body.next_cursor;
    } finally {
      this.more.disabled = false;
      this.render();
    }
  }

  /** A poll: the newest page (new payouts, new statuses) and every other unfinished payout. */
  async refresh() {
    const { body } = await api("GET", `/payouts?limit=${PAGE_SIZE}`);
    let changed = false;
    const newest = new Set();
    for (const payout of [...body.items].reverse()) {
      newest.add(payout.id);
      changed = this.upsert(payout, true) || changed;
    }
    const older = this.order.filter((id) => !newest.has(id) && !FINAL.has(this.byId.get(id).status)).slice(0, 10);
    for (const id of older) {
      const { body: payout } = await api("GET", `/payouts/${encodeURIComponent(id)}`);
      changed = this.upsert(payout) || changed;
    }
    if (changed) this.render();
    return changed;
  }

  render() {
    const rows = this.order.map((id) => {
      const p = this.byId.get(id);
      return h(
        "tr",
        { dataset: { payoutId: p.id, status: p.status } },
        h("td", {}, h("time", { datetime: p.created_at }, when(p.created_at))),
        h("td", {}, p.beneficiary.name, h("div", { class: "muted" }, `${p.beneficiary.bank_code} · ${p.beneficiary.account_number}`)),
        h("td", {}, p.reference),
        h("td", { class: "num" }, formatMoney(p.amount, p.currency)),
        h("td", {}, badge(p.status), p.failure_reason ? h("div", { class: "failure" }, p.failure_reason) : null),
      );
    });
    this.rows.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
    this.more.hidden = !this.cursor;
  }
}
