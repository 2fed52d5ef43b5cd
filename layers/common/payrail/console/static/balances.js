// The balance panel: the balance per currency above the payout form, the ledger under it, and
// "Add funds (sandbox)" where the sandbox payment provider is served (the dev stage only).
import { api, ApiError, Unreachable } from "./api.js";
import { $, announce, h, when } from "./dom.js";
import { CURRENCIES, formatMoney, parseAmount } from "./money.js";

const LEDGER_WORDS = { funding: "Funds received", reserve: "Reserved for a payout", release: "Released (payout failed)", settle: "Paid out" };

export class Balances {
  constructor() {
    this.list = $("#balance-list");
    this.empty = $("#balances-empty");
    this.reference = $("#funding-reference");
    this.ledgerCurrency = $("#ledger-currency");
    this.ledgerRows = $("#ledger-rows");
    this.ledgerEmpty = $("#ledger-empty");
    this.fundsForm = $("#funds-form");
    this.fundsStatus = $("#funds-status");
    this.timer = null;
    this.funding = null;
    this.ledgerCurrency.append(...CURRENCIES.map((code) => h("option", { value: code }, code)));
    this.fundsForm.elements.currency.append(...CURRENCIES.map((code) => h("option", { value: code }, code)));
    this.ledgerCurrency.addEventListener("change", () => this.refresh());
    this.fundsForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.addFunds();
    });
  }

  async start() {
    // The sandbox provider answers only where it is deployed: the form is shown there alone.
    try {
      const probe = await fetch("/sandbox/payments/webhooks", { credentials: "omit" });
      this.fundsForm.hidden = !probe.ok;
    } catch {
      this.fundsForm.hidden = true;
    }
    await this.refresh();
    this.timer = setInterval(() => this.refresh().catch(() => {}), 3000);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async refresh() {
    const { body } = await api("GET", "/balances");
    this.funding = body.funding_reference;
    this.reference.textContent = body.funding_reference;
    this.empty.hidden = body.items.length > 0;
    this.list.replaceChildren(
      ...body.items.map((item) =>
        h(
          "li",
          { dataset: { currency: item.currency } },
          h("strong", {}, formatMoney(item.available, item.currency)),
          " available",
          item.reserved ? ` · ${formatMoney(item.reserved, item.currency)} reserved` : "",
        ),
      ),
    );
    const currency = this.ledgerCurrency.value || CURRENCIES[0];
    const ledger = (await api("GET", `/balances/${currency}/ledger?limit=20`)).body;
    this.ledgerEmpty.hidden = ledger.items.length > 0;
    this.ledgerRows.replaceChildren(
      ...ledger.items.map((entry) =>
        h(
          "tr",
          { dataset: { type: entry.type } },
          h("td", {}, when(entry.created_at)),
          h("td", {}, LEDGER_WORDS[entry.type] || entry.type),
          h("td", { class: "amount" }, `${entry.type === "settle" ? "−" : ""}${formatMoney(entry.amount, entry.currency)}`),
          h("td", { class: "muted" }, entry.payout_id || ""),
        ),
      ),
    );
  }

  async addFunds() {
    const currency = this.fundsForm.elements.currency.value;
    const amount = parseAmount(this.fundsForm.elements.amount.value, currency);
    if (!amount.ok) {
      this.fundsStatus.textContent = amount.error;
      return;
    }
    try {
      await api("POST", "/sandbox/payments/v1/funding", { body: { funding_reference: this.funding, amount: amount.minor, currency } });
      this.fundsStatus.textContent = `${formatMoney(amount.minor, currency)} sent by the sandbox provider; it arrives in a few seconds.`;
      this.fundsForm.reset();
    } catch (error) {
      if (!(error instanceof ApiError) && !(error instanceof Unreachable)) throw error;
      this.fundsStatus.textContent = `Could not add funds: ${error.message}`;
    }
    announce(this.fundsStatus.textContent);
  }
}

/** The insufficient-funds answer, in words for the amount field. */
export function insufficientFunds(problem) {
  if (!String(problem.type || "").endsWith("insufficient-funds")) return null;
  return `Insufficient funds: ${formatMoney(problem.available, problem.currency)} available.`;
}
