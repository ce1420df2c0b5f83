// Owns: the management API's GET /@routes (the running route table as the console shows it) and
// GET /@info (what the console needs to connect and what an operator asks first) bodies.
#pragma once

#include <string>

namespace wsgw {

class Listener;
struct Options;
struct RouteTable;

std::string routeTableJson(const RouteTable *table);
std::string infoJson(const Listener &listener, const Options &opt, const RouteTable *table);

}  // namespace wsgw
