"""Small source files in each language the code chunker parses, written by the tests."""

from __future__ import annotations

SAMPLES: dict[str, tuple[str, str]] = {
    "python": (
        "py",
        '''import os


def top(a, b):
    """Add."""
    return a + b


class Shape:
    """A shape."""

    sides = 0

    def area(self):
        return 0

    @property
    def name(self):
        return "shape"
''',
    ),
    "javascript": (
        "js",
        """const fs = require("fs");

/** Add two numbers. */
function add(a, b) {
  return a + b;
}

class Router {
  constructor() {
    this.routes = [];
  }

  handle(req) {
    return this.routes.length;
  }
}

const mul = (a, b) => a * b;
module.exports = { add, Router, mul };
""",
    ),
    "typescript": (
        "ts",
        """import { x } from "./x";

export interface Options {
  retries: number;
}

export type Id = string;

export function retry(opts: Options): number {
  return opts.retries;
}

export class Client {
  private base: string = "";

  get(path: string): string {
    return this.base + path;
  }
}

enum Color { Red, Green }
""",
    ),
    "tsx": (
        "tsx",
        """import React from "react";

export function Button(props: { label: string }) {
  return <button>{props.label}</button>;
}

export const Card = ({ title }: { title: string }) => {
  return <div>{title}</div>;
};
""",
    ),
    "go": (
        "go",
        """package main

import "fmt"

// Server serves.
type Server struct {
	Addr string
}

// Start starts it.
func (s *Server) Start() error {
	fmt.Println(s.Addr)
	return nil
}

func helper(x int) int {
	return x * 2
}

const Version = "1"
""",
    ),
    "rust": (
        "rs",
        """use std::fmt;

/// A point.
pub struct Point {
    x: i32,
}

impl Point {
    pub fn new(x: i32) -> Self {
        Point { x }
    }

    fn double(&self) -> i32 {
        self.x * 2
    }
}

pub trait Shape {
    fn area(&self) -> f64;
}

pub enum Kind { A, B }

fn free() -> i32 { 1 }
""",
    ),
    "java": (
        "java",
        """package demo;

import java.util.List;

/** A service. */
public class Service {
    private int count;

    public Service(int count) {
        this.count = count;
    }

    public int next() {
        return ++count;
    }
}

interface Greeter {
    String greet(String name);
}
""",
    ),
    "kotlin": (
        "kt",
        """package demo

import kotlin.math.max

class Counter(private var n: Int) {
    fun inc(): Int {
        n += 1
        return n
    }
}

fun topLevel(a: Int, b: Int): Int {
    return max(a, b)
}

object Registry {
    val items = mutableListOf<String>()
}
""",
    ),
    "c": (
        "c",
        """#include <stdio.h>

struct node {
    int value;
};

/* Add. */
int add(int a, int b) {
    return a + b;
}

static void print_node(struct node *n) {
    printf("%d", n->value);
}

typedef enum { RED, GREEN } color;
""",
    ),
    "cpp": (
        "cpp",
        """#include <vector>

namespace geo {

class Circle {
 public:
  double area() const;
  double r;
};

double Circle::area() const {
  return 3.14 * r * r;
}

}  // namespace geo

template <typename T>
T maxOf(T a, T b) {
  return a > b ? a : b;
}
""",
    ),
    "csharp": (
        "cs",
        """using System;

namespace Demo
{
    public class Account
    {
        public decimal Balance { get; set; }

        public void Deposit(decimal amount)
        {
            Balance += amount;
        }
    }

    public interface IStore
    {
        void Save();
    }
}
""",
    ),
    "ruby": (
        "rb",
        """require "json"

module Shop
  class Cart
    def initialize
      @items = []
    end

    def add(item)
      @items << item
    end
  end

  def self.helper
    1
  end
end
""",
    ),
    "php": (
        "php",
        """<?php

namespace App;

use Foo\\Bar;

class Mailer
{
    private $from;

    public function send($to)
    {
        return mail($to, "hi", "body");
    }
}

function helper($x)
{
    return $x * 2;
}
""",
    ),
    "swift": (
        "swift",
        """import Foundation

struct Point {
    var x: Int
}

class Store {
    var items: [String] = []

    func add(_ item: String) {
        items.append(item)
    }
}

func top(a: Int) -> Int {
    return a * 2
}

protocol Named {
    var name: String { get }
}
""",
    ),
    "scala": (
        "scala",
        """package demo

import scala.util.Try

class Parser(input: String) {
  def parse(): Int = {
    input.length
  }
}

object Main {
  def main(args: Array[String]): Unit = {
    println("hi")
  }
}

trait Shape {
  def area: Double
}
""",
    ),
    "lua": (
        "lua",
        """local M = {}

local function helper(x)
  return x * 2
end

function M.add(a, b)
  return a + b
end

function M:method()
  return self
end

return M
""",
    ),
    "bash": (
        "sh",
        """#!/usr/bin/env bash
set -e

greet() {
  echo "hello $1"
}

function cleanup {
  rm -rf /tmp/x
}

greet world
""",
    ),
    "elixir": (
        "ex",
        """defmodule Shop.Cart do
  @moduledoc "A cart."

  def new do
    []
  end

  def add(cart, item) do
    [item | cart]
  end

  defp secret(x), do: x
end
""",
    ),
    "haskell": (
        "hs",
        """module Main where

import Data.List (sort)

data Shape = Circle Double | Square Double

area :: Shape -> Double
area (Circle r) = pi * r * r
area (Square s) = s * s

class Named a where
  name :: a -> String

main :: IO ()
main = print (area (Circle 1))
""",
    ),
    "zig": (
        "zig",
        """const std = @import("std");

pub const Point = struct {
    x: i32,

    pub fn double(self: Point) i32 {
        return self.x * 2;
    }
};

fn add(a: i32, b: i32) i32 {
    return a + b;
}

test "add" {
    try std.testing.expect(add(1, 2) == 3);
}
""",
    ),
    "sql": (
        "sql",
        """CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE INDEX users_name ON users (name);

CREATE VIEW active_users AS
SELECT id, name FROM users WHERE id > 0;

SELECT * FROM users;
""",
    ),
}

# the names each sample defines at its top level or inside a container, as the chunker reads them
DEFINED: dict[str, set[str]] = {
    "python": {"top", "Shape", "area", "name"},
    "javascript": {"add", "Router", "constructor", "handle", "mul"},
    "typescript": {"Options", "Id", "retry", "Client", "get", "Color"},
    "tsx": {"Button", "Card"},
    "go": {"Server", "Start", "helper"},
    "rust": {"Point", "new", "double", "Shape", "Kind", "free"},
    "java": {"Service", "next", "Greeter"},
    "kotlin": {"Counter", "inc", "topLevel", "Registry"},
    "c": {"node", "add", "print_node", "color"},
    "cpp": {"geo", "Circle", "Circle::area", "maxOf"},
    "csharp": {"Demo", "Account", "Balance", "Deposit", "IStore"},
    "ruby": {"Shop", "Cart", "initialize", "add", "helper"},
    "php": {"Mailer", "send", "helper"},
    "swift": {"Point", "Store", "add", "top", "Named"},
    "scala": {"Parser", "Main", "Shape"},
    "lua": {"helper", "M.add", "M:method"},
    "bash": {"greet", "cleanup"},
    "elixir": {"Shop.Cart", "new", "add", "secret"},
    "haskell": {"Shape", "area", "Named", "main"},
    "zig": {"Point", "double", "add"},
    "sql": {"users", "users_name", "active_users"},
}
