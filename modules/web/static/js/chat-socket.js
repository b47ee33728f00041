// The chat page's websocket: JSON messages both ways, reconnecting with a growing pause.

import { $, refreshStatus } from "./common.js";

export class Socket {
  constructor(onMessage, onClose) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.failures = 0;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(`${scheme}//${location.host}/ui/ws`);
    this.ws.addEventListener("open", () => {
      this.failures = 0;
      setConnection("");
    });
    this.ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onMessage(message);
    });
    this.ws.addEventListener("close", () => {
      this.onClose();
      this.failures += 1;
      setConnection("Reconnecting…");
      if (this.failures === 3) refreshStatus(); // a lost login shows up here as a redirect
      setTimeout(() => this.connect(), Math.min(10000, 300 * 2 ** this.failures));
    });
  }

  send(message) {
    if (this.ws.readyState !== WebSocket.OPEN) throw new Error("Not connected to the server yet. Try again in a moment.");
    this.ws.send(JSON.stringify(message));
  }
}

export function setConnection(text) {
  const box = $("connection");
  box.hidden = !text;
  box.textContent = text;
}
