// Polling with backoff, paused while the tab is hidden.
// The task returns true when something changed (the delay goes back to the minimum) and false
// when nothing did (the delay grows towards the maximum); a throw (API unreachable) grows it too.

export class Poller {
  constructor(task, { min = 1000, max = 30000, factor = 1.6 } = {}) {
    this.task = task;
    this.min = min;
    this.max = max;
    this.factor = factor;
    this.delay = min;
    this.timer = null;
    this.running = false;
    this.busy = false;
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this.clear();
      else if (this.running) this.now();
    });
  }

  start() {
    this.running = true;
    this.now();
  }

  stop() {
    this.running = false;
    this.clear();
  }

  /** Poll at once and restart the backoff (after the user did something). */
  now() {
    this.delay = this.min;
    this.clear();
    this.tick();
  }

  clear() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  async tick() {
    if (!this.running || this.busy || document.visibilityState === "hidden") return;
    this.busy = true;
    let active = false;
    try {
      active = await this.task();
    } catch {
      active = false;
    } finally {
      this.busy = false;
    }
    this.delay = active ? this.min : Math.min(this.max, Math.round(this.delay * this.factor));
    if (this.running && document.visibilityState !== "hidden") {
      this.clear();
      this.timer = setTimeout(() => this.tick(), this.delay);
    }
  }
}
