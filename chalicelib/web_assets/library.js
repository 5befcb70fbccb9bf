// App Library: the images jobs name, public and private. A private image's registry token is
// sent once, kept by the OpCenter's vault and never shown again: the API does not return it,
// and the form forgets it as soon as it is sent.
import { allPages, api, path, session } from "./api.js";
import { field, h, replace, table, time } from "./dom.js";
import { act, confirmed, say } from "./ui.js";

function credentials(prefix) {
  const username = h("input", { name: `${prefix}username`, autocomplete: "off" });
  const token = h("input", { name: `${prefix}token`, type: "password", autocomplete: "new-password" });
  return { username, token };
}

export async function libraryPage(main) {
  const listing = h("div", { id: "images" });
  const name = h("input", { name: "name", required: true, autocomplete: "off" });
  const uri = h("input", { name: "uri", required: true, autocomplete: "off", placeholder: "registry.example/team/tool:1.0" });
  const added = credentials("");
  const add = h("button", { type: "submit" }, "Add image");
  const form = h("form", { class: "card", "aria-labelledby": "add-title" },
    h("h2", { id: "add-title" }, "Add an image"),
    h("div", { class: "row" }, field("Name", name), field("Image URI", uri)),
    h("div", { class: "row" }, field("Registry username (private images)", added.username),
      field("Registry token (private images)", added.token, "kept by the OpCenter, never shown again")),
    h("div", { class: "actions" }, add));

  const load = async () => {
    const images = await allPages("v1/images");
    replace(listing, table("Images", ["Name", "URI", "Access", "Owner", "Added", "Changed", ""],
      images.map((image) => [image.name, image.uri, image.private ? "private" : "public", image.owner,
        time(image.createTime), time(image.updateTime), imageActions(image, load)]), "The library is empty."));
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), uri: uri.value.trim() };
    if (added.username.value.trim()) body.username = added.username.value.trim();
    if (added.token.value) body.token = added.token.value;
    added.token.value = "";
    act(add, async () => {
      const image = await api("POST", "v1/images", body);
      name.value = ""; uri.value = ""; added.username.value = "";
      say(`Image ${image.name} is added${image.private ? " as a private image" : ""}.`);
      await load();
    });
  });
  replace(main, h("h1", {}, "App Library"), listing, form);
  await load();
}

function imageActions(image, load) {
  const mayChange = session.user.role === "admin" || session.user.username === image.owner;
  if (!mayChange) return "";
  const edit = h("button", { type: "button", class: "secondary", "aria-label": `Change ${image.name}` }, "Change");
  const remove = h("button", { type: "button", class: "danger", "aria-label": `Delete ${image.name}` }, "Delete");
  const cell = h("div", { class: "actions" }, edit, remove);
  remove.addEventListener("click", () => confirmed(remove, `Really delete ${image.name}?`) && act(remove, async () => {
    await api("DELETE", path("v1/images/{}", image.name));
    say(`Image ${image.name} is deleted.`);
    await load();
  }));
  edit.addEventListener("click", () => {
    if (cell.querySelector("form")) return;
    const uri = h("input", { name: "uri", value: image.uri, autocomplete: "off" });
    const given = credentials("new-");
    const dropCredentials = h("input", { type: "checkbox", name: "public" });
    const save = h("button", { type: "submit" }, "Save");
    const form = h("form", { class: "inline", "aria-label": `Change ${image.name}` },
      field("Image URI", uri), field("New registry username", given.username), field("New registry token", given.token),
      field("Make public (drop its credentials)", dropCredentials), save);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = {};
      if (uri.value.trim() !== image.uri) body.uri = uri.value.trim();
      if (given.username.value.trim()) body.username = given.username.value.trim();
      if (given.token.value) body.token = given.token.value;
      if (dropCredentials.checked) body.public = true;
      given.token.value = "";
      act(save, async () => {
        await api("PATCH", path("v1/images/{}", image.name), body);
        say(`Image ${image.name} is changed.`);
        await load();
      });
    });
    cell.append(form);
    uri.focus();
  });
  return cell;
}
