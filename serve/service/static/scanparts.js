// Parts shared by the X-ray result view and the seizure-photo result view: the facts line and the image
// (falling back to the thumbnail when retention has dropped the full upload).

import { ApiError, fetchImage } from "./api.js";
import { formatTime, h } from "./dom.js";

let imageUrl = null; // object URL of the image shown last; released when another is shown

/** File, time, officer, size, model and time taken; `extra` adds [term, value] pairs first. */
export function meta(scan, extra = []) {
  const item = (k, v) => h("div", {}, h("dt", {}, k), h("dd", {}, v));
  return h("dl", { class: "meta" },
    extra.map(([k, v]) => item(k, v)),
    item("File", scan.filename),
    item("Screened", formatTime(scan.created_at)),
    item("Officer", scan.officer),
    item("Image size", `${scan.width} × ${scan.height} px`),
    item("Model", `${scan.model_name} ${scan.model_version}`),
    item("Time taken", `${Math.round(scan.total_ms ?? scan.latency_ms)} ms`));
}

/** Show the upload in `viewer` ({setImage, setMessage}), or its thumbnail after retention. */
export async function showImage(viewer, scan, alt) {
  let url;
  try {
    if (scan.image_stored === false) throw new ApiError(410, "");
    url = await fetchImage(scan.image_url);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 410) {
      viewer.setMessage(`The image cannot be shown. ${err.message}`);
      return;
    }
    try {
      url = await fetchImage(scan.thumbnail_url);
      viewer.setMessage("The full-resolution image is no longer kept; showing the small preview.");
    } catch (err2) {
      viewer.setMessage(`The image is no longer kept. ${err2.message}`);
      return;
    }
  }
  if (imageUrl) URL.revokeObjectURL(imageUrl);
  imageUrl = url;
  viewer.setImage(url, alt);
}
