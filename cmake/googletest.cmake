# GoogleTest for the tests: the system's (find_package), else the pinned release vendored in
# third_party/googletest (the GPU machine has none and no network). FUSCO_GTEST_SOURCE_DIR
# names a source folder to build instead of looking for an installed one.
set(FUSCO_GTEST_SOURCE_DIR "" CACHE PATH
    "Build GoogleTest from this source folder (default: find_package(GTest), else third_party/googletest)")
set(_fusco_gtest_source ${FUSCO_GTEST_SOURCE_DIR})
if(NOT _fusco_gtest_source)
  find_package(GTest QUIET)
  if(NOT GTest_FOUND)
    set(_fusco_gtest_source ${PROJECT_SOURCE_DIR}/third_party/googletest)
  endif()
endif()
if(_fusco_gtest_source)
  if(NOT EXISTS ${_fusco_gtest_source}/CMakeLists.txt)
    message(FATAL_ERROR "fusco: no GoogleTest sources at '${_fusco_gtest_source}' "
                        "(FUSCO_GTEST_SOURCE_DIR, or third_party/googletest)")
  endif()
  # gtest only, not installed with fusco, built with its own flags.
  set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  add_subdirectory(${_fusco_gtest_source} ${PROJECT_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  message(STATUS "fusco: GoogleTest built from ${_fusco_gtest_source}")
endif()
