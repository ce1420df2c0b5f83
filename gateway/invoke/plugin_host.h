// The worker-process side of "isolation": "process": `wsgw --plugin-host NAME`, started by IsolatedPlugin
// with the socket to the gateway on fd 3 and the plugin's private copy on fd 4. It loads the plugin,
// checks its ABI, runs init, then runs invocations one at a time and forwards host API calls to the
// gateway. A crash here ends only this process; the gateway counts one integration error and restarts it.
#pragma once

namespace wsgw {

int runPluginHost(int argc, char **argv);

}  // namespace wsgw
