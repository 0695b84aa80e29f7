// The dashboard's only script: the home page's live feed. Pages work
// without it; it adds each new event of the merchant to #feed as the node
// announces it (GET /dashboard/feed, Server-Sent Events).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const feed = document.getElementById("feed");
  const main = document.getElementById("main");
  if (!feed || !main || !window.EventSource) return;
  const source = new EventSource(main.dataset.feed);
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    const li = document.createElement("li");
    const when = new Date(event.created * 1000).toISOString().replace(".000Z", "Z");
    const type = document.createElement("code");
    type.textContent = event.type;
    li.append(`${when} `, type, " ");
    if (event.object && event.object.startsWith("pay_")) {
      const link = document.createElement("a");
      link.href = `/dashboard/payments/${encodeURIComponent(event.object)}`;
      link.textContent = event.object;
      li.append(link);
    } else if (event.object) {
      li.append(event.object);
    }
    feed.prepend(li);
  };
});
