# molt_add_plugin(NAME
#   SOURCES <device sources>        -> static library molt_<NAME>_impl, for unit tests
#   ENTRY <file with MOLT_PLUGIN>   -> the loadable module plugins/molt-<NAME>.so
# )
# Both link only the SDK: plugins never see core/.
function(molt_add_plugin name)
  cmake_parse_arguments(P "" "ENTRY" "SOURCES" ${ARGN})
  add_library(molt_${name}_impl STATIC ${P_SOURCES})
  target_link_libraries(molt_${name}_impl PUBLIC molt::sdk)
  target_compile_options(molt_${name}_impl PRIVATE ${MOLT_WARNINGS})
  set_target_properties(molt_${name}_impl PROPERTIES CXX_VISIBILITY_PRESET hidden)
  target_include_directories(molt_${name}_impl PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})

  add_library(molt_${name} MODULE ${P_ENTRY})
  target_link_libraries(molt_${name} PRIVATE molt_${name}_impl)
  target_compile_options(molt_${name} PRIVATE ${MOLT_WARNINGS})
  set_target_properties(molt_${name} PROPERTIES
    PREFIX "" OUTPUT_NAME "molt-${name}"
    LIBRARY_OUTPUT_DIRECTORY ${MOLT_PLUGIN_OUTPUT_DIR}
    CXX_VISIBILITY_PRESET hidden
    # No RUNPATH: molt has libmolt-sdk.so loaded before it opens a plugin.
    SKIP_BUILD_RPATH ON)
  install(TARGETS molt_${name} LIBRARY DESTINATION lib/molt/plugins)
  set_property(GLOBAL APPEND PROPERTY MOLT_PLUGIN_TARGETS molt_${name})
endfunction()

# Adds every immediate subdirectory of the current source directory that has
# a CMakeLists.txt, so a new plugin, test folder or guest needs no edit here.
function(molt_add_all_subdirectories)
  file(GLOB children LIST_DIRECTORIES true CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*)
  foreach(child IN LISTS children)
    if(IS_DIRECTORY ${child} AND EXISTS ${child}/CMakeLists.txt)
      add_subdirectory(${child})
    endif()
  endforeach()
endfunction()
