// Live progress for a job page: server-sent events; when the job is over, reload to show its result.
(function () {
  var box = document.getElementById("job");
  if (!box) return;
  var id = box.dataset.job;
  var statusEl = document.getElementById("status");
  var elapsedEl = document.getElementById("elapsed");
  var stepsEl = document.getElementById("steps");
  function show(s) {
    statusEl.textContent = s.status;
    statusEl.className = "status-" + s.status;
    elapsedEl.textContent = s.elapsed;
    var pos = document.getElementById("position");
    if (pos) pos.textContent = s.position ? "(" + s.position + " job(s) ahead)" : "";
    stepsEl.textContent = "";
    s.steps.forEach(function (st) {
      var li = document.createElement("li");
      var t = document.createElement("span");
      t.className = "muted";
      t.textContent = st.t + " s ";
      li.appendChild(t);
      li.appendChild(document.createTextNode(st.message));  // text, never HTML
      stepsEl.appendChild(li);
    });
  }
  if (!window.EventSource) { setTimeout(function () { location.reload(); }, 3000); return; }
  var source = new EventSource("/jobs/" + encodeURIComponent(id) + "/events");
  source.addEventListener("progress", function (e) { show(JSON.parse(e.data)); });
  source.addEventListener("end", function () { source.close(); location.reload(); });
  source.onerror = function () { source.close(); setTimeout(function () { location.reload(); }, 3000); };
})();
