// The page's only script: live messages (server-sent events), and sending what the visitor does.
const me = document.body.dataset.as, place = document.body.dataset.in;
const messages = document.getElementById("messages");
const status = document.getElementById("status");
const modal = document.getElementById("modal");
const composer = document.getElementById("composer");
const files = composer.querySelector("input[type=file]");

function show(html) {  // a note from the playground, or the answer to a request
  if (!html) return;
  const t = document.createElement("template");
  t.innerHTML = html;
  messages.append(t.content.firstElementChild);
  messages.scrollTop = messages.scrollHeight;
}

const feed = new EventSource(`/events?as=${encodeURIComponent(me)}&in=${encodeURIComponent(place)}`);
feed.addEventListener("message", (e) => {
  const m = JSON.parse(e.data);
  const atEnd = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
  const t = document.createElement("template");
  t.innerHTML = m.html;
  const old = document.getElementById("m" + m.id);
  if (old) old.replaceWith(t.content.firstElementChild); else messages.append(t.content.firstElementChild);
  if (atEnd || !old) messages.scrollTop = messages.scrollHeight;
});
feed.addEventListener("remove", (e) => document.getElementById("m" + JSON.parse(e.data).id)?.remove());
feed.addEventListener("status", async (e) => {
  const s = JSON.parse(e.data);
  status.textContent = s.text;
  status.className = "status" + (s.online ? " online" : "");
  if (s.online) {
    const c = await (await fetch("/commands")).json();
    document.getElementById("commands").innerHTML = c.datalist;
    document.getElementById("listing").innerHTML = c.listing;
  }
});

async function post(path, body) {
  const r = await fetch(path, body instanceof FormData ? {method: "POST", body} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const answer = await r.json();
  show(answer.note);
  if (answer.modal) { modal.innerHTML = answer.modal; modal.showModal(); }
}

files.addEventListener("change", () => {
  document.getElementById("chosen").textContent = files.files.length ? `${files.files.length} photo(s)` : "";
});
composer.addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = new FormData(composer);
  body.append("as", me); body.append("in", place);
  composer.reset(); files.dispatchEvent(new Event("change"));
  await post("/send", body);
});
messages.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-custom-id]");
  if (b) post("/click", {as: me, message: b.closest("article").dataset.id, custom_id: b.dataset.customId});
});
messages.addEventListener("change", (e) => {
  const s = e.target.closest("select[data-custom-id]");
  if (s) post("/click", {as: me, message: s.closest("article").dataset.id, custom_id: s.dataset.customId,
                         values: [s.value]});
});
modal.addEventListener("close", () => {
  const form = modal.querySelector("form");
  if (modal.returnValue !== "submit" || !form) return;
  post("/modal", {as: me, interaction: form.dataset.interaction, values: Object.fromEntries(new FormData(form))});
});
