#include "yaml_loader.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace gorgone {
namespace {
namespace fs = std::filesystem;

// Each test gets a fresh directory of fixture files, removed afterwards.
class YamlLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gorgone-yaml-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const std::string& text) {
    fs::path p = fs::path(dir_) / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  Result<YAML::Node> load(const std::string& name) { return load_yaml_with_includes((fs::path(dir_) / name).string()); }

  std::string dir_;
};

std::vector<std::string> module_names(const YAML::Node& modules) {
  std::vector<std::string> names;
  for (const auto& m : modules) names.push_back(m["name"].as<std::string>());
  return names;
}

TEST_F(YamlLoaderTest, PlainFile) {
  write("main.yaml", "gorgone:\n  gorgonecore:\n    id: 1\n    hostname: central\n");
  auto doc = load("main.yaml");
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ((*doc)["gorgone"]["gorgonecore"]["id"].as<int>(), 1);
  EXPECT_EQ((*doc)["gorgone"]["gorgonecore"]["hostname"].as<std::string>(), "central");
}

TEST_F(YamlLoaderTest, SingleInclude) {
  write("main.yaml", "name: main\nconfiguration: !include sub.yaml\n");
  write("sub.yaml", "gorgone:\n  gorgonecore:\n    id: 7\n");
  auto doc = load("main.yaml");
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ((*doc)["name"].as<std::string>(), "main");
  EXPECT_EQ((*doc)["configuration"]["gorgone"]["gorgonecore"]["id"].as<int>(), 7);
  EXPECT_TRUE((*doc)["configuration"].IsMap());  // the !include scalar is gone
}

TEST_F(YamlLoaderTest, CommaListMergesInOrder) {
  write("main.yaml", "conf: !include a.yaml , b.yaml\n");
  write("a.yaml", "x: 1\ny: from-a\nlist: [a1]\n");
  write("b.yaml", "y: from-b\nz: 3\nlist: [b1, b2]\n");
  auto doc = load("main.yaml");
  ASSERT_TRUE(doc) << doc.error();
  const YAML::Node conf = (*doc)["conf"];
  EXPECT_EQ(conf["x"].as<int>(), 1);
  EXPECT_EQ(conf["y"].as<std::string>(), "from-b");
  EXPECT_EQ(conf["z"].as<int>(), 3);
  ASSERT_EQ(conf["list"].size(), 3u);
  EXPECT_EQ(conf["list"][0].as<std::string>(), "a1");
  EXPECT_EQ(conf["list"][2].as<std::string>(), "b2");
}

TEST_F(YamlLoaderTest, GlobDeepMergesMapsAndAppendsModules) {
  write("config.yaml", "configuration: !include config.d/*.yaml\n");
  // Written out of order: the glob result must be sorted.
  write("config.d/41-action.yaml",
        "gorgone:\n  modules:\n    - name: action\n      package: gorgone::modules::core::action::hooks\n"
        "      enable: true\n");
  write("config.d/40-gorgoned.yaml",
        "gorgone:\n  gorgonecore:\n    id: 1\n    timeout: 50\n  modules:\n    - name: httpserver\n"
        "      enable: true\n");
  write("config.d/42-proxy.yaml",
        "gorgone:\n  gorgonecore:\n    timeout: 20\n    external_com_type: tcp\n  modules:\n    - name: proxy\n");
  write("config.d/notes.txt", "not: included\n");
  fs::create_directories(fs::path(dir_) / "config.d" / "sub.yaml");  // a directory: skipped

  auto doc = load("config.yaml");
  ASSERT_TRUE(doc) << doc.error();
  const YAML::Node gorgone = (*doc)["configuration"]["gorgone"];
  EXPECT_EQ(module_names(gorgone["modules"]), (std::vector<std::string>{"httpserver", "action", "proxy"}));
  EXPECT_EQ(gorgone["gorgonecore"]["id"].as<int>(), 1);
  EXPECT_EQ(gorgone["gorgonecore"]["timeout"].as<int>(), 20);
  EXPECT_EQ(gorgone["gorgonecore"]["external_com_type"].as<std::string>(), "tcp");
  EXPECT_FALSE((*doc)["configuration"]["not"]);
}

TEST_F(YamlLoaderTest, GlobWithQuestionMark) {
  write("main.yaml", "v: !include part?.yaml\n");
  write("part1.yaml", "[1]\n");
  write("part2.yaml", "[2]\n");
  write("part10.yaml", "[10]\n");
  auto doc = load("main.yaml");
  ASSERT_TRUE(doc) << doc.error();
  ASSERT_EQ((*doc)["v"].size(), 2u);
  EXPECT_EQ((*doc)["v"][1].as<int>(), 2);
}

TEST_F(YamlLoaderTest, GlobMatchingNothingYieldsNothing) {
  write("main.yaml", "a: 1\nconfiguration: !include config.d/*.yaml\n");
  auto doc = load("main.yaml");
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_TRUE((*doc)["configuration"].IsNull());
  EXPECT_EQ((*doc)["a"].as<int>(), 1);
}

TEST_F(YamlLoaderTest, RelativePathsFollowTheIncludingFile) {
  // main -> conf/one.yaml -> ../shared/two.yaml (relative to conf/, not to main)
  write("main.yaml", "root: !include conf/one.yaml\n");
  write("conf/one.yaml", "one: 1\ntwo: !include ../shared/two.yaml\n");
  write("shared/two.yaml", "value: two\n");
  // Loaded through a relative path from another working directory.
  std::string cwd = fs::current_path().string();
  fs::current_path(dir_);
  auto doc = load_yaml_with_includes("main.yaml");
  fs::current_path(cwd);
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ((*doc)["root"]["one"].as<int>(), 1);
  EXPECT_EQ((*doc)["root"]["two"]["value"].as<std::string>(), "two");
}

TEST_F(YamlLoaderTest, NestedIncludesAndAbsolutePath) {
  std::string leaf = write("deep/leaf.yaml", "leaf: true\n");
  write("main.yaml", "a: !include mid.yaml\n");
  write("mid.yaml", "b: !include " + leaf + "\nlist: !include l1.yaml, l2.yaml\n");
  write("l1.yaml", "- x\n");
  write("l2.yaml", "- y\n");
  auto doc = load("main.yaml");
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_TRUE((*doc)["a"]["b"]["leaf"].as<bool>());
  ASSERT_EQ((*doc)["a"]["list"].size(), 2u);
  EXPECT_EQ((*doc)["a"]["list"][1].as<std::string>(), "y");
}

TEST_F(YamlLoaderTest, SameFileTwiceIsNotACycle) {
  write("main.yaml", "a: !include common.yaml\nb: !include common.yaml\n");
  write("common.yaml", "k: v\n");
  auto doc = load("main.yaml");
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ((*doc)["b"]["k"].as<std::string>(), "v");
}

TEST_F(YamlLoaderTest, CycleIsAnError) {
  write("main.yaml", "a: !include b.yaml\n");
  write("b.yaml", "c: !include c.yaml\n");
  write("c.yaml", "back: !include main.yaml\n");
  auto doc = load("main.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find("include cycle"), std::string::npos) << doc.error();
  EXPECT_NE(doc.error().find("c.yaml -> "), std::string::npos) << doc.error();
  EXPECT_NE(doc.error().find("main.yaml"), std::string::npos) << doc.error();
}

TEST_F(YamlLoaderTest, SelfIncludeIsACycle) {
  write("self.yaml", "me: !include self.yaml\n");
  auto doc = load("self.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find("include cycle"), std::string::npos) << doc.error();
}

TEST_F(YamlLoaderTest, DepthIsCapped) {
  // f0 -> f1 -> ... -> f17: 17 hops, one too many.
  for (int i = 0; i < 17; ++i)
    write("f" + std::to_string(i) + ".yaml", "next: !include f" + std::to_string(i + 1) + ".yaml\n");
  write("f17.yaml", "end: true\n");
  auto doc = load("f0.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find("more than 16 levels"), std::string::npos) << doc.error();

  // 16 hops are fine.
  auto ok = load("f1.yaml");
  ASSERT_TRUE(ok) << ok.error();
}

TEST_F(YamlLoaderTest, MissingFileNamesBothFiles) {
  std::string main = write("main.yaml", "a: !include exists.yaml, missing.yaml\n");
  write("exists.yaml", "x: 1\n");
  auto doc = load("main.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find("cannot open '" + dir_ + "/missing.yaml'"), std::string::npos) << doc.error();
  EXPECT_NE(doc.error().find("No such file or directory"), std::string::npos) << doc.error();
  EXPECT_NE(doc.error().find("included from '" + main + "'"), std::string::npos) << doc.error();
}

TEST_F(YamlLoaderTest, MissingTopLevelFile) {
  auto doc = load("nope.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find("nope.yaml"), std::string::npos) << doc.error();
  EXPECT_EQ(doc.error().find("included from"), std::string::npos) << doc.error();
}

TEST_F(YamlLoaderTest, SyntaxErrorGivesFileLineAndColumn) {
  std::string main = write("main.yaml", "a: !include bad.yaml\n");
  std::string bad = write("bad.yaml", "ok: 1\nlist:\n  - one\n  - [two, three\nnext: 2\n");
  auto doc = load("main.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find(bad + ": line "), std::string::npos) << doc.error();
  EXPECT_NE(doc.error().find("column"), std::string::npos) << doc.error();
  EXPECT_NE(doc.error().find("included from '" + main + "'"), std::string::npos) << doc.error();

  write("top.yaml", "a: 1\nb: [\n");
  auto top = load("top.yaml");
  ASSERT_FALSE(top);
  EXPECT_NE(top.error().find("top.yaml: line 3, column 1"), std::string::npos) << top.error();
}

TEST_F(YamlLoaderTest, SyntaxErrorLineNumber) {
  write("bad.yaml", "a: 1\nb: 2\nc: 3\n  d: 4\n");
  auto doc = load("bad.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find("bad.yaml: line 4, column"), std::string::npos) << doc.error();
}

TEST_F(YamlLoaderTest, RejectsNonRegularFiles) {
  write("main.yaml", "a: !include sub\n");
  fs::create_directories(fs::path(dir_) / "sub");
  auto doc = load("main.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find("is not a regular file"), std::string::npos) << doc.error();

  std::string fifo = (fs::path(dir_) / "fifo.yaml").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto f = load("fifo.yaml");  // must not hang on open
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().find("is not a regular file"), std::string::npos) << f.error();
}

TEST_F(YamlLoaderTest, RejectsHugeFiles) {
  std::string big = (fs::path(dir_) / "big.yaml").string();
  {
    std::ofstream out(big, std::ios::binary);
    out << "a: 1\n";
  }
  fs::resize_file(big, kMaxYamlFileSize + 1);  // sparse: cheap
  auto doc = load("big.yaml");
  ASSERT_FALSE(doc);
  EXPECT_NE(doc.error().find("too large"), std::string::npos) << doc.error();
}

TEST_F(YamlLoaderTest, EmptyIncludedFileAddsNothing) {
  write("main.yaml", "conf: !include a.yaml, empty.yaml, b.yaml\n");
  write("a.yaml", "k: 1\n");
  write("empty.yaml", "");
  write("b.yaml", "j: 2\n");
  auto doc = load("main.yaml");
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ((*doc)["conf"]["k"].as<int>(), 1);
  EXPECT_EQ((*doc)["conf"]["j"].as<int>(), 2);
}

TEST_F(YamlLoaderTest, StringVariant) {
  write("inc/x.yaml", "x: 42\n");
  auto doc = load_yaml_string_with_includes("top: !include inc/x.yaml\nplain: !other text\n", dir_);
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ((*doc)["top"]["x"].as<int>(), 42);
  EXPECT_EQ((*doc)["plain"].as<std::string>(), "text");

  auto bad = load_yaml_string_with_includes("a: [1,\n", dir_);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("<string>: line"), std::string::npos) << bad.error();

  auto empty = load_yaml_string_with_includes("a: !include \"  , \"\n", dir_);
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().find("without a file name"), std::string::npos) << empty.error();
}

TEST(MergeYaml, DoesNotModifyInputs) {
  YAML::Node a = YAML::Load("m: {k: 1, l: [1]}\n");
  YAML::Node b = YAML::Load("m: {k: 2, l: [2], n: 3}\n");
  YAML::Node merged = merge_yaml(a, b);
  EXPECT_EQ(merged["m"]["k"].as<int>(), 2);
  EXPECT_EQ(merged["m"]["l"].size(), 2u);
  EXPECT_EQ(merged["m"]["n"].as<int>(), 3);
  EXPECT_EQ(YAML::Dump(a), "m: {k: 1, l: [1]}");
  EXPECT_EQ(YAML::Dump(b), "m: {k: 2, l: [2], n: 3}");
}

TEST(MergeYaml, LaterScalarWinsOverContainer) {
  YAML::Node merged = merge_yaml(YAML::Load("{a: {b: 1}}"), YAML::Load("{a: plain}"));
  EXPECT_EQ(merged["a"].as<std::string>(), "plain");
}

}  // namespace
}  // namespace gorgone
