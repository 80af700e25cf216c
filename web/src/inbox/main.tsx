document.getElementById("app")!.textContent = "inbox";
