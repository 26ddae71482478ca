# molt_sdk_add_plugin(<name>
#   SOURCES <file>...            the device's code
#   [ENTRY <file>]               the file with MOLT_PLUGIN(...). When given, SOURCES
#                                become the static library <name>-impl, which unit
#                                tests link with molt::sdk_testing, and the module
#                                holds only ENTRY; without it the module holds SOURCES.
#   [OUTPUT_DIRECTORY <dir>]     where molt-<name>.so lands (default: the current
#                                binary directory); name it in a machine file's
#                                plugin_dirs, or install it to <prefix>/lib/molt/plugins
# )
# Creates the MODULE target <name>, the file molt-<name>.so that molt loads.
#
# The module gets no RUNPATH: molt has libmolt-sdk.so loaded before it opens
# any plugin, and the loader satisfies the plugin's need for it by its soname,
# so a plugin always runs against the SDK of the molt that loads it (which the
# SDK ABI check guarantees is compatible). Undefined symbols fail the link
# rather than the load.
function(molt_sdk_add_plugin name)
  cmake_parse_arguments(P "" "ENTRY;OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT P_SOURCES)
    message(FATAL_ERROR "molt_sdk_add_plugin(${name}): SOURCES is required")
  endif()
  if(P_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "molt_sdk_add_plugin(${name}): unknown arguments ${P_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT P_OUTPUT_DIRECTORY)
    set(P_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  endif()

  if(P_ENTRY)
    add_library(${name}-impl STATIC ${P_SOURCES})
    target_link_libraries(${name}-impl PUBLIC molt::sdk)
    target_include_directories(${name}-impl PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
    set_target_properties(${name}-impl PROPERTIES
      POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
    add_library(${name} MODULE ${P_ENTRY})
    target_link_libraries(${name} PRIVATE ${name}-impl)
  else()
    add_library(${name} MODULE ${P_SOURCES})
    target_link_libraries(${name} PRIVATE molt::sdk)
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX "" OUTPUT_NAME "molt-${name}" SUFFIX ".so"
    LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIRECTORY}
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    SKIP_BUILD_RPATH ON)
  target_link_options(${name} PRIVATE "LINKER:--no-undefined")
endfunction()
